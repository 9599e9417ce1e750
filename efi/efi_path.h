/*
 * File names as the UEFI shell writes them: "FS0:\dir\file.qcow2", with a
 * device (map name) prefix, '\' separators and case-insensitive names.
 * Plain C with no firmware headers, so the host tests can compile it too.
 *
 * A canonical path is "DEV:\a\b": the device in upper case (it may be empty
 * when there is no shell: "\a\b"), single '\' separators, no "." or ".."
 * components and no trailing separator except for the root "DEV:\".
 */
#ifndef QB_EFI_PATH_H
#define QB_EFI_PATH_H

#include <stddef.h>

#define QB_EFI_DEV_MAX 32   /* longest device name kept, with its NUL */

/* Length of the device prefix of `path` without its ':' ("fs0:\x" gives 3),
 * or -1 when the path has none. A device prefix is a non-empty run of
 * characters other than ':', '\' and '/' that ends in ':'. */
int qb_efi_path_devlen(const char *path);

/* True for a path whose file part starts at the root ("\x", "fs0:\x",
 * "/x"); false for "x" and "fs0:x". */
int qb_efi_path_is_rooted(const char *path);

/* True when both paths carry the same device prefix (case-insensitive). */
int qb_efi_path_same_dev(const char *a, const char *b);

/* Resolves `name` against the directory `dir` into a canonical path:
 *   - "DEV:\x": absolute;
 *   - "DEV:x": against `dir` if `dir` is on DEV, else against DEV's root
 *     (callers pass DEV's current directory as `dir` to get the shell's
 *     meaning);
 *   - "\x": against the root of dir's device;
 *   - "x": against `dir`.
 * Both separators are accepted; "." and ".." are resolved (".." stops at
 * the root). `dir` may be NULL only when `name` carries its own device.
 * Returns 0, or -1 when the result does not fit in `size` bytes or there
 * is nothing to resolve against. */
int qb_efi_path_join(const char *dir, const char *name, char *out, size_t size);

/* The directory part of the canonical path `path` ("FS0:\a\b" gives
 * "FS0:\a", "FS0:\b" gives "FS0:\"). Returns 0 or -1 when it does not fit. */
int qb_efi_path_dirname(const char *path, char *out, size_t size);

#endif
