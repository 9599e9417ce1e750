/*
 * The UEFI front end: what its files offer each other. Each file wraps one
 * firmware interface (console, pool, file protocol, shell) and turns it into
 * the engine's interfaces from core/ (qb_out, qb_alloc, qb_backend,
 * qb_opener). EFI_STATUS values are converted to engine error codes here at
 * the edge and nowhere else.
 */
#ifndef QB_EFI_H
#define QB_EFI_H

#include <efi.h>
#include <efilib.h>

#include "qb_types.h"
#include "qb_backend.h"
#include "qb_cmd.h"
#include "efi_utf.h"
#include "efi_path.h"

#define QB_EFI_PROGRAM "qcowboot.efi"

/* efi_main.c: the image handle, for BS->Exit and the loaded-image protocol. */
extern EFI_HANDLE qb_efi_image;

/* efi_alloc.c: the engine's allocator over the boot-services pool. Memory
 * is 16-byte aligned. malloc/calloc/free/abort for zstd and BearSSL live
 * in the same file. */
extern const qb_alloc qb_efi_alloc;

/* efi_out.c: standard output (ST->ConOut) and standard error (ST->StdErr)
 * as engine text sinks: UTF-8 in, CHAR16 out, "\n" becomes "\r\n". The
 * console is looked up on every write, so the shell's redirection works. */
extern const qb_out qb_efi_stdout;
extern const qb_out qb_efi_stderr;

/* efi_status.c: what an EFI_STATUS means, in words and as an engine code. */
const char *qb_efi_strstatus(EFI_STATUS st);
int qb_efi_errcode(EFI_STATUS st);

/* efi_args.c: the shell's argv converted to UTF-8. argv[argc] is NULL.
 * Outside the shell argc is 0. */
typedef struct qb_efi_args {
    int argc;
    char **argv;
} qb_efi_args;
EFI_STATUS qb_efi_args_get(EFI_HANDLE image, qb_efi_args *args);
void qb_efi_args_free(qb_efi_args *args);

/* efi_shell.c: the UEFI shell's view of file systems (map names such as
 * FS0: and current directories). Without the shell, the only volume is
 * the one this image was loaded from, named by the empty device. */
bool qb_efi_shell_present(void);
/* The current directory of `dev` ("FS0"), or of the current file system
 * when dev is NULL, as a path "DEV:\dir" in UTF-8. */
int qb_efi_shell_cwd(const char *dev, char *out, size_t size, qb_err *err);
/* Replaces the device name in `dev` (size bytes) by its canonical map name,
 * the one `map` lists first for that device, preferring an FSn name. */
int qb_efi_shell_canon_dev(char *dev, size_t size, qb_err *err);
/* Opens the root directory of the volume named `dev`. */
int qb_efi_volume_root(const char *dev, EFI_FILE_HANDLE *root, qb_err *err);
/* The handle carrying the file system of the volume named `dev` (its
 * device path identifies the volume). */
int qb_efi_volume_handle(const char *dev, EFI_HANDLE *handle, qb_err *err);

/* efi_file.c: a backend over an open EFI_FILE_PROTOCOL handle (owned by
 * the backend from then on, closed on error too). `name` is used in error
 * messages. */
int qb_efi_file_backend(EFI_FILE_HANDLE fh, const char *name, bool writable,
                        qb_backend **out, qb_err *err);
/* The file's EFI_FILE_INFO, from the pool (free with FreePool). */
int qb_efi_file_info(EFI_FILE_HANDLE fh, const char *name, EFI_FILE_INFO **info,
                     qb_err *err);

/* efi_open.c: the engine's opener over the shell's file systems. */
extern const qb_opener qb_efi_opener;
/* Resolves `name` (against the directory of `relative_to` when given, else
 * the shell's current directory) into the canonical path `out`
 * (QB_PATH_MAX bytes), as the opener does, without opening anything. */
int qb_efi_resolve(const char *relative_to, const char *name, char *out, qb_err *err);

#endif
