/*
 * The checks of the firmware front end's host tests: failures collect on
 * one "FAIL …" line per group, a clean group prints "ok   NAME", as
 * tests/lib.sh counts them. Included by one test program each.
 */
#ifndef QB_GROUP_CHECK_H
#define QB_GROUP_CHECK_H

#include <stdio.h>
#include <string.h>

static int group_failed;

static void failf(const char *what, const char *got, const char *want)
{
    if (!group_failed)
        printf("FAIL ");
    printf("%s: got '%s', want '%s'; ", what, got, want);
    group_failed = 1;
}

static void check_str(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        failf(what, got, want);
}

static void check_int(const char *what, long got, long want)
{
    char g[32], w[32];

    if (got != want) {
        snprintf(g, sizeof g, "%ld", got);
        snprintf(w, sizeof w, "%ld", want);
        failf(what, g, w);
    }
}

/* Ends a group: prints its line and says whether it failed. */
static int end_group(const char *name)
{
    int failed = group_failed;

    if (failed)
        printf("(%s)\n", name);
    else
        printf("ok   %s\n", name);
    group_failed = 0;
    return failed;
}

#endif
