/*
 * cli.h - pieces shared by the `phonediffusion` subcommands.
 */
#ifndef PD_TOOLS_CLI_H
#define PD_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "phonediffusion.h"

/* Log hook printing "[level] message" to stderr. */
void cli_log_stderr(pd_log_level level, const char *msg, void *user);

/* "scalar", "avx2", "avx512", "amx", "neon", "auto" -> pd_isa; -1 when unknown. */
int cli_parse_isa(const char *s);

/* "auto", "fp32", "bf16" -> pd_precision; -1 when unknown. */
int cli_parse_precision(const char *s);

/* A memory size: bytes, or a number with K/M/G (binary: 1024-based; "KB"/"KiB",
 * "MB"/"MiB", "GB"/"GiB" read the same), e.g. "800M", "1.5G". False when malformed,
 * zero or over 1 PiB. */
bool cli_parse_size(const char *s, int64_t *out);

/* `generate`: argv[first..] are its options. Returns the exit status. */
int cli_generate(int argc, char **argv, int first);
void cli_generate_usage(FILE *f);

#endif
