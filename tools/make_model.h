/*
 * make_model.h - `phonediffusion make-model`: deterministic random-weight checkpoints
 * in the original single-file (LDM / sgm) layout, for demos and benchmarks without
 * downloads. See make_model.c.
 */
#ifndef PD_TOOLS_MAKE_MODEL_H
#define PD_TOOLS_MAKE_MODEL_H

#include <stdio.h>

/* `make-model`: argv[first..] are its options. Returns the exit status (0 ok, 1 runtime
 * failure, 2 usage error). */
int cli_make_model(int argc, char **argv, int first);
void cli_make_model_usage(FILE *f);

#endif
