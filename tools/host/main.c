/* The Linux command-line front end: `qcowboot COMMAND ...`. The commands
 * themselves live in core/ and are shared with the firmware build. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "posix_backend.h"
#include "qb_cmd.h"

static void *host_alloc(void *ctx, size_t size)
{
    return malloc(size);
}

static void host_free(void *ctx, void *ptr)
{
    free(ptr);
}

static void write_stream(void *ctx, const char *s, size_t n)
{
    fwrite(s, 1, n, (FILE *)ctx);
}

static void wall_clock(void *ctx, uint64_t *sec, uint32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = (uint64_t)ts.tv_sec;
    *nsec = (uint32_t)ts.tv_nsec;
}

/* New encryption keys (create -o encrypt.format=luks): the kernel's CSPRNG. */
static int kernel_random(void *ctx, void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = getrandom((char *)buf + done, len - done, 0);
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    qb_env env;
    memset(&env, 0, sizeof(env));
    env.alloc = (qb_alloc){ NULL, host_alloc, host_free };
    env.opener = posix_opener;
    env.out = (qb_out){ stdout, write_stream };
    env.err = (qb_out){ stderr, write_stream };
    env.program = "qcowboot";
    env.now = wall_clock;
    env.rng = kernel_random;
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("qcowboot %s\n", QB_VERSION);
        return 0;
    }
    int rc = qb_cmd_main(&env, argc - 1, argv + 1);
    if (fflush(stdout) != 0 && rc == 0) {
        perror("qcowboot: writing output");
        rc = 1;
    }
    return rc;
}
