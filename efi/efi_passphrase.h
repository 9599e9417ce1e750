/*
 * Passphrases of encrypted images, asked for on the firmware console, and
 * the progress of the key derivation that follows (PBKDF2 takes seconds,
 * far more in firmware than the host that chose the iteration count).
 * Both are hooks of the engine's environment (qb_env.ask_passphrase,
 * qb_env.kdf_progress); the engine asks again after a wrong passphrase,
 * up to three times, for every command that opens an image.
 */
#ifndef QB_EFI_PASSPHRASE_H
#define QB_EFI_PASSPHRASE_H

#include "qb_efi.h"

/* Prints "Passphrase for IMAGE:" and reads a line without echo: one '*'
 * per character, Backspace takes the last one back, Enter ends it, Esc
 * gives up (returns 1). The characters are stored as UTF-8. */
int qb_efi_ask_passphrase(void *ctx, const char *image, unsigned attempt, uint8_t *buf,
                          size_t cap, size_t *len);
/* "Unlocking: N%" on the console, rewritten in place as N grows. */
void qb_efi_kdf_progress(void *ctx, uint64_t done, uint64_t total);

#endif
