/* `snapshot`: list (-l), create (-c), apply (-a) and delete (-d) the
 * internal snapshots of a qcow2 image, as qemu-img snapshot does. The
 * backing chain is never opened: snapshots belong to the top layer. */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_image_internal.h"

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: snapshot [-f FMT] [-q] -l | -c NAME | -a NAME | -d NAME  IMAGE\n"
               "Lists, creates, applies or deletes the internal snapshots of IMAGE.\n"
               "  -l        list them\n"
               "  -c NAME   create one named NAME of the disk as it is now\n"
               "  -a NAME   revert the disk to the snapshot with this id or name\n"
               "  -d NAME   delete the snapshot with this id or name\n"
               "  -q        quiet (nothing is printed but errors)\n");
}

static int list(const qb_env *env, qb_image *img)
{
    if (img->is_qcow2 && img->q.nb_snapshots) {
        qb_puts(&env->out, "Snapshot list:\n");
        qb_snapshot_table(&env->out, &img->q);
    }
    qb_image_close(img);
    return 0;
}

int qb_cmd_snapshot(const qb_env *env, int argc, char **argv)
{
    static const qb_longopt longs[] = { { "help", false, 'h' }, { NULL, false, 0 } };
    int action = 0;             /* 'l', 'c', 'a' or 'd' */
    const char *name = NULL, *fmt = NULL;
    qb_getopt g;
    qb_getopt_init(&g, argc, argv, &env->err);
    int c;
    while ((c = qb_getopt_next(&g, "lc:a:d:f:qh", longs)) != -1) {
        switch (c) {
        case 'l': case 'c': case 'a': case 'd':
            if (action) {
                qb_cmd_error(env, "snapshot: cannot mix '-l', '-a', '-c', '-d'");
                return 1;
            }
            action = c;
            name = g.arg;
            break;
        case 'f': fmt = g.arg; break;
        case 'q': break;        /* nothing but errors is printed anyway */
        case 'h': help(&env->out); return 0;
        default: help(&env->err); return 1;
        }
    }
    if (!action || g.index != argc - 1) {
        help(&env->err);
        return 1;
    }
    const char *file = argv[g.index];
    qb_image *img;
    if (qb_cmd_open_rw(env, file, fmt, NULL, true, action != 'l', &img))
        return 1;
    if (action == 'l')
        return list(env, img);
    if (!img->is_qcow2) {
        qb_cmd_error(env, "%s: format %s has no internal snapshots", file, qb_image_format(img));
        qb_image_close(img);
        return 1;
    }
    qb_err err = { 0, "" };
    int r;
    const char *what;
    if (action == 'c') {
        uint64_t sec = 0;
        uint32_t nsec = 0;
        if (env->now)
            env->now(env->now_ctx, &sec, &nsec);
        r = qb_image_snapshot_create(img, name, sec, nsec, &err);
        what = "create";
    } else if (action == 'a') {
        r = qb_image_snapshot_apply(img, name, &err);
        what = "apply";
    } else {
        r = qb_image_snapshot_delete(img, name, &err);
        what = "delete";
    }
    if (r)
        qb_cmd_error(env, "Could not %s snapshot '%s': %s", what, name,
                     err.msg[0] ? err.msg : qb_strerror(r));
    /* Flushed even after a failure: what the engine did before failing
     * left the image consistent, and is kept so. */
    qb_err ferr = { 0, "" };
    if (qb_image_close_flush(img, &ferr)) {
        qb_cmd_error(env, "%s: flush failed: %s", file,
                     ferr.msg[0] ? ferr.msg : qb_strerror(ferr.code));
        return 1;
    }
    return r ? 1 : 0;
}
