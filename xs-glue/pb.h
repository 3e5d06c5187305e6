/* A minimal protobuf writer: just what request encoding needs (varints and
 * length-delimited fields). The storage is a mortal SV, so a croak halfway
 * through an encoding frees it like any other temporary. As prost does,
 * callers write a message's fields in field-number order and leave out
 * defaults but not a present oneof member or embedded message:
 * t/48-request-encoding.t holds every request to prost's bytes. */
#ifndef EVETCD_PB_H
#define EVETCD_PB_H

typedef struct {
    SV *sv;
    char *p;
    STRLEN len, cap;
} pb_buf;

static void pb_init(pTHX_ pb_buf *b)
{
    b->sv = sv_2mortal(newSV(64));
    b->p = SvPVX(b->sv);
    b->len = 0;
    b->cap = SvLEN(b->sv);
}

static void pb_reserve(pTHX_ pb_buf *b, STRLEN more)
{
    if (b->len + more > b->cap) {
        b->p = SvGROW(b->sv, 2 * (b->len + more));
        b->cap = SvLEN(b->sv);
    }
}

static void pb_raw_varint(pTHX_ pb_buf *b, U64 v)
{
    pb_reserve(aTHX_ b, 10);
    while (v >= 0x80) { b->p[b->len++] = (char)((v & 0x7f) | 0x80); v >>= 7; }
    b->p[b->len++] = (char)v;
}

/* Varint field written even when zero (a oneof member must be present). */
static void pb_int_always(pTHX_ pb_buf *b, int field, I64 v)
{
    pb_raw_varint(aTHX_ b, ((U64)field << 3) | 0);
    pb_raw_varint(aTHX_ b, (U64)v);
}

/* Varint field; proto3 leaves zero values out. */
static void pb_uint(pTHX_ pb_buf *b, int field, U64 v)
{
    if (v) pb_int_always(aTHX_ b, field, (I64)v);
}

static void pb_int(pTHX_ pb_buf *b, int field, I64 v)
{
    if (v) pb_int_always(aTHX_ b, field, v);
}

static void pb_bytes_always(pTHX_ pb_buf *b, int field, const char *s, STRLEN n)
{
    pb_raw_varint(aTHX_ b, ((U64)field << 3) | 2);
    pb_raw_varint(aTHX_ b, n);
    pb_reserve(aTHX_ b, n);
    if (n) Copy(s, b->p + b->len, n, char);
    b->len += n;
}

/* Length-delimited field; empty strings are left out like other defaults. */
static void pb_bytes(pTHX_ pb_buf *b, int field, const char *s, STRLEN n)
{
    if (n) pb_bytes_always(aTHX_ b, field, s, n);
}

/* Embedded message: always written, so an empty one still selects a oneof. */
static void pb_msg(pTHX_ pb_buf *b, int field, const pb_buf *sub)
{
    pb_bytes_always(aTHX_ b, field, sub->p, sub->len);
}

#endif
