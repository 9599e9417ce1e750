/* TEMPORARY: placeholders while the write engine is being written. */
#include "qb_image_internal.h"

bool qb_image_is_writable(const qb_image *img) { (void)img; return false; }
int qb_image_write(qb_image *img, uint64_t off, const void *buf, size_t len, qb_err *err)
{ (void)img; (void)off; (void)buf; (void)len; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
int qb_image_write_zeroes(qb_image *img, uint64_t off, uint64_t len, qb_err *err)
{ (void)img; (void)off; (void)len; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
int qb_image_discard(qb_image *img, uint64_t off, uint64_t len, qb_err *err)
{ (void)img; (void)off; (void)len; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
int qb_image_flush(qb_image *img, qb_err *err) { (void)img; (void)err; return QB_OK; }
int qb_image_close_flush(qb_image *img, qb_err *err) { (void)err; qb_image_close(img); return QB_OK; }
int qb_image_write_compressed(qb_image *img, uint64_t off, const void *buf, size_t len, qb_err *err)
{ (void)img; (void)off; (void)buf; (void)len; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
int qb_image_snapshot_create(qb_image *img, const char *name, uint64_t s, uint32_t ns, qb_err *err)
{ (void)img; (void)name; (void)s; (void)ns; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
int qb_image_snapshot_apply(qb_image *img, const char *n, qb_err *err)
{ (void)img; (void)n; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
int qb_image_snapshot_delete(qb_image *img, const char *n, qb_err *err)
{ (void)img; (void)n; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
int qb_image_repair(qb_image *img, int mode, qb_err *err)
{ (void)img; (void)mode; return qb_err_set(err, QB_EUNSUPP, "writing not ready"); }
