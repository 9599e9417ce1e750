/* A minimal test harness: CHECK records a failure with its location and
 * carries on; the runner prints `N passed, N failed`. */
#ifndef QB_UNIT_H
#define QB_UNIT_H

#include <stdio.h>

extern int unit_failures;
#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            unit_failures++; \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        } \
    } while (0)

typedef struct unit_test {
    const char *name;
    void (*fn)(void);
} unit_test;

#endif
