#!/usr/bin/env python3
"""Generates src/text/unicode_tables.c and src/text/html_entities.c: the Unicode and
HTML tables the CLIP tokenizer
and the A1111 prompt parser need, taken from this Python's own stdlib (unicodedata,
str methods, html, html.entities), so that the C code reproduces what the Python
reference implementations do on the same Python version.

Tables written:
  pd_uni_props       sorted ranges [start, next start) -> PD_UNI_* flag bits
  pd_uni_lower       str.lower() as ranges {start, count, stride, delta}
                     (single code point mappings; U+0130 and final sigma are in C)
  pd_uni_decimal_zero  first code point of every run of ten decimal digits (Nd)
  pd_html_entities   html.entities.html5, sorted by name (byte order)
  pd_html_charref_remap / pd_html_invalid_cp   html.unescape's numeric rules

Flags (see src/text/unicode.h):
  L        general category Lu Ll Lt Lm Lo               (regex \\p{L})
  N        general category Nd Nl No                     (regex \\p{N})
  WS       White_Space: what the `regex` module's \\s matches; str.isspace() minus
           U+001C..U+001F (checked against `regex` when it is installed)
  PYSPACE  str.isspace()                                 (str.strip(), `re` \\s)
  ALNUM    str.isalnum()                                 (`re` \\w, with '_')
  DECIMAL  str.isdecimal()                               (`re` \\d, float())
  CASED / CASE_IGNORABLE   the two properties str.lower() uses for final sigma,
           probed through str.lower() itself (CASED only for characters that are
           not case-ignorable; for those, Python never looks at Cased)
  CLIP_DROP  matched by none of CLIP's split classes under re.IGNORECASE: a
           non-letter, non-number whose case variants are letters (U+0345)

Usage: python3 scripts/gen_unicode_tables.py [OUT_DIR, default src/text]
"""
import html
import html.entities
import os
import sys
import unicodedata

MAX_CP = 0x110000

F_L = 1 << 0
F_N = 1 << 1
F_WS = 1 << 2
F_PYSPACE = 1 << 3
F_ALNUM = 1 << 4
F_DECIMAL = 1 << 5
F_CASED = 1 << 6
F_CASE_IGNORABLE = 1 << 7
F_CLIP_DROP = 1 << 8

LETTER_CATS = {"Lu", "Ll", "Lt", "Lm", "Lo"}
NUMBER_CATS = {"Nd", "Nl", "No"}


def is_letter_or_number(c):
    cat = unicodedata.category(c)
    return cat in LETTER_CATS or cat in NUMBER_CATS


def props(cp):
    c = chr(cp)
    f = 0
    cat = unicodedata.category(c)
    if cat in LETTER_CATS:
        f |= F_L
    if cat in NUMBER_CATS:
        f |= F_N
    if c.isspace():
        f |= F_PYSPACE
        if not 0x1C <= cp <= 0x1F:
            f |= F_WS
    if c.isalnum():
        f |= F_ALNUM
    if c.isdecimal():
        f |= F_DECIMAL
    if 0xD800 <= cp <= 0xDFFF:
        return f
    t1 = ("A" + c + "\u03a3").lower().endswith("\u03c2")
    t2 = (c + "\u03a3").lower().endswith("\u03c2")
    if t2:
        f |= F_CASED
    elif t1:
        f |= F_CASE_IGNORABLE
    if not (f & (F_L | F_N | F_WS)):
        variants = {c.lower(), c.upper(), c.casefold()}
        if any(len(v) == 1 and is_letter_or_number(v) for v in variants):
            f |= F_CLIP_DROP
    return f


def check_against_regex(flags):
    try:
        import regex
    except ImportError:
        return
    ws = regex.compile(r"\s")
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if bool(ws.match(chr(cp))) != bool(flags[cp] & F_WS):
            sys.exit("WS flag disagrees with regex \\s at U+%04X" % cp)


def prop_ranges():
    flags = [props(cp) for cp in range(MAX_CP)]
    check_against_regex(flags)
    ranges = []
    for cp in range(MAX_CP):
        if not ranges or ranges[-1][1] != flags[cp]:
            ranges.append((cp, flags[cp]))
    return ranges


def lower_ranges():
    pairs = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF or cp == 0x130:
            continue
        low = chr(cp).lower()
        if len(low) != 1:
            sys.exit("unexpected multi-character lowercase at U+%04X" % cp)
        if ord(low) != cp:
            pairs.append((cp, ord(low) - cp))
    if chr(0x130).lower() != "i\u0307":
        sys.exit("U+0130 no longer lowercases to i + U+0307")
    # Greedy runs with a constant delta and a stride of 1 or 2.
    out = []
    i = 0
    while i < len(pairs):
        start, delta = pairs[i]
        best = (1, 1)
        for stride in (1, 2):
            n = 1
            while (i + n < len(pairs) and pairs[i + n][0] == start + n * stride
                   and pairs[i + n][1] == delta):
                n += 1
            if n > best[0]:
                best = (n, stride)
        count, stride = best
        out.append((start, count, stride, delta))
        i += count
    return out


def decimal_runs():
    zeros = []
    for cp in range(MAX_CP):
        c = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or not c.isdecimal():
            continue
        value = unicodedata.decimal(c)
        if value == 0:
            zeros.append(cp)
            for k in range(10):
                if not chr(cp + k).isdecimal() or unicodedata.decimal(chr(cp + k)) != k:
                    sys.exit("decimal run at U+%04X is not 0..9" % cp)
        elif not zeros or cp - zeros[-1] != value:
            sys.exit("decimal U+%04X is outside a run of ten" % cp)
    return zeros


def c_string(s):
    out = []
    for b in s.encode("utf-8"):
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C, 0x3F):
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def emit(w, items, per_line):
    """Writes C initialisers, per_line to a line (keeps generated files short)."""
    for i in range(0, len(items), per_line):
        w("    " + " ".join(x + "," for x in items[i:i + per_line]) + "\n")


def header(w, name, what):
    w("/*\n * %s - %s.\n * Generated by scripts/gen_unicode_tables.py, do not edit.\n" % (name, what))
    w(" * Python %s, Unicode %s (unicodedata), html.entities.html5.\n"
      % (sys.version.split()[0], unicodedata.unidata_version))
    w(" * Regenerate: python3 scripts/gen_unicode_tables.py src/text\n */\n")
    w('#include "text/unicode.h"\n\n')


def write_unicode(w):
    header(w, "unicode_tables.c", "Unicode properties (letters, numbers, whitespace, case) and lowercasing")
    ranges = prop_ranges()
    w("const pd_uni_range pd_uni_props[] = {\n")
    emit(w, ["{0x%05X, 0x%03X}" % (start, f) for start, f in ranges], 6)
    w("};\nconst int pd_uni_props_count = %d;\n\n" % len(ranges))

    lows = lower_ranges()
    w("const pd_uni_lower_range pd_uni_lower[] = {\n")
    emit(w, ["{0x%05X, %d, %d, %d}" % low for low in lows], 4)
    w("};\nconst int pd_uni_lower_count = %d;\n\n" % len(lows))

    zeros = decimal_runs()
    w("const uint32_t pd_uni_decimal_zero[] = {\n")
    emit(w, ["0x%05X" % z for z in zeros], 8)
    w("};\nconst int pd_uni_decimal_zero_count = %d;\n" % len(zeros))


def write_html(w):
    header(w, "html_entities.c", "HTML5 named entities and Python's html.unescape character-reference rules")
    ents = sorted(html.entities.html5.items(), key=lambda kv: kv[0].encode("utf-8"))
    items = []
    for name, value in ents:
        cps = [ord(ch) for ch in value]
        if not 1 <= len(cps) <= 2 or len(name) > PD_HTML_MAX_NAME:
            sys.exit("unexpected entity %r" % name)
        cps += [0] * (2 - len(cps))
        items.append("{%s, {0x%05X, 0x%05X}}" % (c_string(name), cps[0], cps[1]))
    w("const pd_html_entity pd_html_entities[] = {\n")
    emit(w, items, 3)
    w("};\nconst int pd_html_entities_count = %d;\n\n" % len(ents))

    remap = sorted(html._invalid_charrefs.items())
    for num, value in remap:
        if len(value) != 1:
            sys.exit("unexpected charref remap %r" % num)
    w("const pd_html_remap pd_html_charref_remap[] = {\n")
    emit(w, ["{0x%05X, 0x%05X}" % (num, ord(value)) for num, value in remap], 4)
    w("};\nconst int pd_html_charref_remap_count = %d;\n\n" % len(remap))

    runs = []
    for cp in sorted(html._invalid_codepoints):
        if runs and runs[-1][1] + 1 == cp:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    w("const pd_uni_span pd_html_invalid_cp[] = {\n")
    emit(w, ["{0x%05X, 0x%05X}" % (lo, hi) for lo, hi in runs], 4)
    w("};\nconst int pd_html_invalid_cp_count = %d;\n" % len(runs))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "src/text"
    with open(os.path.join(out_dir, "unicode_tables.c"), "w") as f:
        write_unicode(f.write)
    with open(os.path.join(out_dir, "html_entities.c"), "w") as f:
        write_html(f.write)


PD_HTML_MAX_NAME = 32

if __name__ == "__main__":
    main()
