/* TEMPORARY placeholder: the io command is being written. */
#include "qb_cmd_internal.h"

int qb_cmd_io(const qb_env *env, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    qb_cmd_error(env, "io: not available yet");
    return 1;
}
