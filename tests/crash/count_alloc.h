/*
 * A qb_alloc over malloc that counts what is live, so each engine run can
 * be checked for leaks on its own (ASan's leak report comes only at exit
 * and cannot name the crash point).
 */
#ifndef CRASH_COUNT_ALLOC_H
#define CRASH_COUNT_ALLOC_H

#include <stddef.h>
#include "qb_types.h"

typedef struct count_alloc {
    size_t live;     /* bytes */
    size_t blocks;
} count_alloc;

qb_alloc count_alloc_make(count_alloc *c);

#endif
