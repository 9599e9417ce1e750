/* TEMPORARY placeholder: the create command is being written. */
#include "qb_cmd_internal.h"

int qb_cmd_create(const qb_env *env, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    qb_cmd_error(env, "create: not available yet");
    return 1;
}
