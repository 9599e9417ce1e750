/*
 * Driving the engine: a workload's images made by qemu-img and loaded
 * into memory, one run of its steps over the fault backend (with the model
 * following along), and the check of an image found after a crash.
 */
#ifndef CRASH_ENGINE_RUN_H
#define CRASH_ENGINE_RUN_H

#include <stddef.h>
#include <stdint.h>
#include "fault_backend.h"
#include "mem_files.h"
#include "model.h"
#include "workloads.h"

typedef struct wl_setup {
    const workload *w;
    char dir[512];            /* where the image files live */
    char image_name[64];      /* "<name>.qcow2", the name the engine opens */
    char base_name[64];       /* its backing file, "" without */
    uint8_t *image;           /* the fresh image made by qemu-img */
    size_t image_len;
    uint8_t *base;            /* backing content padded to the disk size; NULL: none */
    uint8_t *initial;         /* the virtual disk before the workload */
    mem_files files;          /* the backing file, for the engine */
    uint8_t *scratch;         /* a virtual disk's worth, for verify_image */
    step_list steps;
    uint8_t **data;           /* each write step's bytes, made once */
} wl_setup;

/* Makes the images in dir with qemu-img and loads them. */
bool wl_setup_make(wl_setup *su, const workload *w, const char *dir, char *why, size_t whylen);
void wl_setup_free(wl_setup *su);

/* Backend calls made when each flush step started and when it returned. */
typedef struct flush_trace {
    uint64_t start[256], end[256];
    size_t n;
} flush_trace;

typedef struct run_opts {
    uint64_t crash_at;        /* 0: never */
    bool readback;            /* read each changed range back after its step */
    flush_trace *trace;       /* may be NULL */
} run_opts;

/*
 * Runs the workload from the fresh image over d (reset here), with the
 * model m following. Stops at the first step that fails once the backend
 * has crashed; a failure without a crash, a leak, a backend left open, a
 * corrupt-image warning or a readback mismatch fails the run (false, why).
 */
bool run_workload(const wl_setup *su, fault_disk *d, model *m, const run_opts *o,
                  char *why, size_t whylen);

/*
 * Opens `image` read-only as the workload's image and checks it against
 * the model: bytes not touched since the last completed flush read as they
 * were then; each snapshot exists, may exist or is gone as the model says,
 * and reads as it did when taken.
 */
bool verify_image(const wl_setup *su, const uint8_t *image, size_t len, model *m,
                  char *why, size_t whylen);

/* The engine's own `check` of image (as the workload's image file): its
 * exit status (0 clean, 2 corruptions, 3 leaks only, ...) and, for
 * statuses other than 0 and 3, its output in out. */
int engine_check(const wl_setup *su, const uint8_t *image, size_t len, char *out,
                 size_t outlen);

/* Runs `cmd` with sh; false with its exit status and output in why. */
bool run_shell(const char *cmd, char *why, size_t whylen);



/*
 * Opens a crashed image writable, checks its stable bytes against m as
 * verify_image does, writes more (writes, zeroes, a flush, a close), and
 * checks what reads back. The resulting image is left in `result` for
 * qemu-img check.
 */
bool write_after_crash(const wl_setup *su, const uint8_t *image, size_t len, model *m,
                       byte_buf *result, char *why, size_t whylen);

#endif
