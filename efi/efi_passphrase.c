/*
 * The console side of encrypted images: the passphrase prompt and the
 * key derivation's progress (see efi_passphrase.h). Both write to the
 * error console, which the shell does not redirect with `>`, so that the
 * question is seen even when a command's output goes to a file.
 */
#include "efi_passphrase.h"

/* UTF-8 of one UCS-2 character; returns its length. */
static size_t utf8_of(CHAR16 c, uint8_t out[3])
{
    if (c < 0x80) {
        out[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (uint8_t)(0xc0 | c >> 6);
        out[1] = (uint8_t)(0x80 | (c & 0x3f));
        return 2;
    }
    out[0] = (uint8_t)(0xe0 | c >> 12);
    out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
    out[2] = (uint8_t)(0x80 | (c & 0x3f));
    return 3;
}

static EFI_STATUS read_key(EFI_INPUT_KEY *key)
{
    UINTN idx;
    EFI_STATUS st;

    for (;;) {
        st = ST->ConIn->ReadKeyStroke(ST->ConIn, key);
        if (st != EFI_NOT_READY)
            return st;
        st = BS->WaitForEvent(1, &ST->ConIn->WaitForKey, &idx);
        if (st != EFI_SUCCESS)
            return st;
    }
}

int qb_efi_ask_passphrase(void *ctx, const char *image, unsigned attempt, uint8_t *buf,
                          size_t cap, size_t *len)
{
    const qb_out *o = &qb_efi_stderr;
    EFI_INPUT_KEY key;
    size_t n = 0;

    *len = 0;
    if (!ST->ConIn)
        return 1;
    /* Keys typed before the question are not part of the answer. */
    ST->ConIn->Reset(ST->ConIn, FALSE);
    if (attempt > 1)
        qb_printf(o, "Passphrase for %s (try %u of %u): ", image, attempt, QB_PASSPHRASE_TRIES);
    else
        qb_printf(o, "Passphrase for %s: ", image);
    for (;;) {
        if (read_key(&key) != EFI_SUCCESS) {
            qb_printf(o, "\n");
            goto cancel;
        }
        if (key.ScanCode == SCAN_ESC) {
            qb_printf(o, " (cancelled)\n");
            goto cancel;
        }
        if (key.UnicodeChar == CHAR_CARRIAGE_RETURN || key.UnicodeChar == CHAR_LINEFEED)
            break;
        if (key.UnicodeChar == CHAR_BACKSPACE) {
            if (n) {
                /* Back over one character: its continuation bytes too. */
                while (n && (buf[n - 1] & 0xc0) == 0x80)
                    n--;
                if (n)
                    n--;
                qb_printf(o, "\b \b");
            }
            continue;
        }
        if (key.UnicodeChar < 0x20)
            continue;
        uint8_t u[3];
        size_t k = utf8_of(key.UnicodeChar, u);
        if (n + k > cap)
            continue;               /* full: further characters are dropped */
        for (size_t i = 0; i < k; i++)
            buf[n++] = u[i];
        qb_printf(o, "*");
    }
    qb_printf(o, "\n");
    *len = n;
    return 0;
cancel:
    for (volatile uint8_t *v = buf; n; n--)
        *v++ = 0;
    return 1;
}

/* The last percentage shown, so that the console gets a line only when it
 * changes (the engine reports every few thousand iterations). */
static int last_percent = -1;

void qb_efi_kdf_progress(void *ctx, uint64_t done, uint64_t total)
{
    int pct = total ? (int)(done * 100 / total) : 100;

    if (pct > 100)
        pct = 100;
    if (pct == last_percent)
        return;
    if (last_percent < 0 || pct < last_percent)
        qb_printf(&qb_efi_stderr, "Unlocking: %d%%", pct);
    else
        qb_printf(&qb_efi_stderr, "\rUnlocking: %d%%", pct);
    last_percent = pct;
    if (pct == 100) {
        qb_printf(&qb_efi_stderr, "\n");
        last_percent = -1;
    }
}
