/* Path helpers shared by the engine and the front ends. Paths may use '/'
 * (Linux) or '\' (UEFI) separators and may start with a device ("fs0:"). */
#ifndef QB_PATH_H
#define QB_PATH_H

#include "qb_types.h"

/* True if name does not depend on the directory of the image naming it. */
bool qb_path_is_absolute(const char *name);
/* Writes into out the name of a file referenced by `name` from a file at
 * `base`, as QEMU displays it: name itself if absolute, else base's
 * directory part followed by name. Returns false if it does not fit. */
bool qb_path_combine(char *out, size_t cap, const char *base, const char *name);

#endif
