/* `snapshot -l`: the internal snapshots of an image. Creating, applying
 * and deleting snapshots need the writer. */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_image_internal.h"


static void help(const qb_out *o)
{
    qb_puts(o, "Usage: snapshot -l IMAGE\n"
               "Lists the internal snapshots of IMAGE.\n");
}

int qb_cmd_snapshot(const qb_env *env, int argc, char **argv)
{
    static const qb_longopt longs[] = { { "help", false, 'h' }, { NULL, false, 0 } };
    bool list = false;
    const char *fmt = NULL;
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "lf:h", longs)) != -1) {
        switch (c) {
        case 'l': list = true; break;
        case 'f': fmt = g.arg; break;
        case 'h': help(&env->out); return 0;
        default: help(&env->err); return 1;
        }
    }
    if (!list || g.index != argc - 1) {
        help(&env->err);
        return 1;
    }
    qb_image *img;
    if (qb_cmd_open(env, argv[g.index], fmt, NULL, true, &img))
        return 1;
    if (img->is_qcow2 && img->q.nb_snapshots) {
        qb_puts(&env->out, "Snapshot list:\n");
        qb_snapshot_table(&env->out, &img->q);
    }
    qb_image_close(img);
    return 0;
}
