/*
 * Stick mode: qcowboot.efi started with no arguments by the firmware's
 * boot manager, typically as \EFI\BOOT\BOOTX64.EFI on a USB stick, with no
 * UEFI shell around.
 *
 *  1. The config, qcowboot.cfg, is read from the directory qcowboot.efi
 *     was started from (\EFI\BOOT\qcowboot.cfg) or else from the root of
 *     its volume (\qcowboot.cfg); efi_config.c describes its syntax. It is
 *     optional; its problems are shown above the menu with line numbers.
 *  2. Without entries in a config, the menu lists the *.qcow2 files in the
 *     root directory of the volume and in \images, in name order (at most
 *     32).
 *  3. The menu (efi_menu.c) counts down to the default entry (5 s unless
 *     the config says otherwise) and boots it; a single image found on the
 *     stick therefore boots by itself after the countdown.
 *  4. When a boot fails, or the guest returns, its messages and status are
 *     shown under the menu and the menu comes back without a countdown, so
 *     a broken entry is not booted over and over.
 *  5. The menu also offers a return to the firmware (its boot manager),
 *     a reboot and a power off.
 *
 * Started from the UEFI shell without arguments, qcowboot.efi prints its
 * usage instead: the shell is where commands are typed.
 */
#include <string.h>
#include "qb_boot.h"
#include "qb_fmt.h"
#include "efi_stick.h"

#define CONFIG_MAX_SIZE (64u << 10)
#define CAPTURE_SIZE 2048
#define CAPTURE_LINES 6
#define NOTICE_SIZE 4096

/* --- what the boot prints, kept for the menu ------------------------------- */

typedef struct capture {
    char buf[CAPTURE_SIZE];
    size_t len;
} capture;

typedef struct tee {
    const qb_out *to;
    capture *cap;
} tee;

static void tee_write(void *ctx, const char *s, size_t n)
{
    tee *t = ctx;
    capture *c = t->cap;

    t->to->write(t->to->ctx, s, n);
    /* Only the latest text is kept. */
    if (n > CAPTURE_SIZE / 2) {
        s += n - CAPTURE_SIZE / 2;
        n = CAPTURE_SIZE / 2;
    }
    if (c->len + n > CAPTURE_SIZE) {
        size_t drop = c->len + n - CAPTURE_SIZE;   /* <= c->len */
        memmove(c->buf, c->buf + drop, c->len - drop);
        c->len -= drop;
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
}

/* Appends text to the notice (NOTICE_SIZE bytes), cut when full. */
static void notice_add(char *notice, const char *fmt, ...)
{
    size_t len = strlen(notice);
    va_list ap;

    va_start(ap, fmt);
    qb_vsnprintf(notice + len, NOTICE_SIZE - len, fmt, ap);
    va_end(ap);
}

/* Appends the last CAPTURE_LINES non-empty lines of the capture. */
static void notice_add_capture(char *notice, const capture *c)
{
    size_t start[CAPTURE_LINES], end[CAPTURE_LINES];
    int n = 0;
    size_t i = c->len;

    while (i > 0 && n < CAPTURE_LINES) {
        size_t e = i, b;
        while (e > 0 && (c->buf[e - 1] == '\n' || c->buf[e - 1] == '\r'))
            e--;
        b = e;
        while (b > 0 && c->buf[b - 1] != '\n')
            b--;
        i = b;
        /* Of a line rewritten with '\r' (progress), what a console shows:
         * the last version. */
        for (size_t k = e; k > b; k--) {
            if (c->buf[k - 1] == '\r') {
                b = k;
                break;
            }
        }
        if (e > b) {
            start[n] = b;
            end[n] = e;
            n++;
        }
    }
    while (n-- > 0)
        notice_add(notice, "  %.*s\n", (int)(end[n] - start[n]), c->buf + start[n]);
}

/* --- the volume -------------------------------------------------------------- */

/* The directory qcowboot.efi was loaded from ("\EFI\BOOT"), from the file
 * path nodes of the loaded image; "\" when there are none. */
static void own_dir(char *out, size_t size)
{
    EFI_LOADED_IMAGE *li;
    EFI_DEVICE_PATH *dp;
    CHAR16 path16[QB_STICK_IMAGE_MAX];
    char path[QB_STICK_IMAGE_MAX * 3], full[QB_STICK_IMAGE_MAX];
    size_t len = 0;

    memcpy(out, "\\", 2);
    if (BS->HandleProtocol(qb_efi_image, &LoadedImageProtocol, (void **)&li) != EFI_SUCCESS ||
        !li->FilePath)
        return;
    for (dp = li->FilePath; !IsDevicePathEnd(dp); dp = NextDevicePathNode(dp)) {
        size_t nlen = DevicePathNodeLength(dp);

        if (nlen < 4)
            return;
        if (DevicePathType(dp) != MEDIA_DEVICE_PATH || DevicePathSubType(dp) != MEDIA_FILEPATH_DP)
            continue;
        nlen = (nlen - 4) / sizeof(CHAR16);
        if (len && len + 1 < QB_STICK_IMAGE_MAX)
            path16[len++] = '\\';
        if (len + nlen >= QB_STICK_IMAGE_MAX)
            return;
        /* The node may sit at an odd address: copy bytes. */
        memcpy(path16 + len, (UINT8 *)dp + 4, nlen * sizeof(CHAR16));
        while (nlen && path16[len + nlen - 1] == 0)
            nlen--;
        len += nlen;
    }
    path16[len] = 0;
    if (qb_utf16_to_utf8(path16, path, sizeof path) >= sizeof path ||
        qb_efi_path_join("\\", path, full, sizeof full) < 0 ||
        qb_efi_path_dirname(full, out, size) < 0)
        memcpy(out, "\\", 2);
}

static int open_file(EFI_FILE_HANDLE root, const char *path, EFI_FILE_HANDLE *fh, qb_err *err)
{
    CHAR16 path16[QB_STICK_IMAGE_MAX];
    EFI_STATUS st;

    if (qb_utf8_to_ucs2(path, path16, QB_STICK_IMAGE_MAX) < 0)
        return qb_err_set(err, QB_EINVAL, "%s: name not representable", path);
    st = root->Open(root, fh, path16, EFI_FILE_MODE_READ, 0);
    if (st != EFI_SUCCESS)
        return qb_err_set(err, qb_efi_errcode(st), "could not open '%s': %s", path,
                          qb_efi_strstatus(st));
    return QB_OK;
}

/* Reads the config at `path` into a pool buffer. QB_ENOENT when there is
 * no such file. */
static int read_config(EFI_FILE_HANDLE root, const char *path, char **data, size_t *len,
                       qb_err *err)
{
    EFI_FILE_HANDLE fh;
    EFI_FILE_INFO *info;
    UINTN size;
    EFI_STATUS st;
    char *buf;

    if (open_file(root, path, &fh, err) < 0)
        return err->code;
    if (qb_efi_file_info(fh, path, &info, err) < 0) {
        fh->Close(fh);
        return err->code;
    }
    if (info->Attribute & EFI_FILE_DIRECTORY) {
        FreePool(info);
        fh->Close(fh);
        return qb_err_set(err, QB_ENOENT, "%s is a directory", path);
    }
    if (info->FileSize > CONFIG_MAX_SIZE) {
        FreePool(info);
        fh->Close(fh);
        return qb_err_set(err, QB_EINVAL, "%s is larger than %u KiB; ignored", path,
                          CONFIG_MAX_SIZE >> 10);
    }
    size = (UINTN)info->FileSize;
    FreePool(info);
    buf = qb_malloc(&qb_efi_alloc, size + 1);
    if (!buf) {
        fh->Close(fh);
        return qb_err_set(err, QB_ENOMEM, "%s: out of memory", path);
    }
    st = fh->Read(fh, &size, buf);
    fh->Close(fh);
    if (st != EFI_SUCCESS) {
        qb_free(&qb_efi_alloc, buf);
        return qb_err_set(err, qb_efi_errcode(st), "could not read '%s': %s", path,
                          qb_efi_strstatus(st));
    }
    *data = buf;
    *len = size;
    return QB_OK;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int cmp_nocase(const char *a, const char *b)
{
    while (*a && lower(*a) == lower(*b)) {
        a++;
        b++;
    }
    return (unsigned char)lower(*a) - (unsigned char)lower(*b);
}

/* Adds the *.qcow2 files of directory `dir` ("\" or "\images") to cfg, in
 * name order. */
static void scan_dir(EFI_FILE_HANDLE root, const char *dir, qb_stick_config *cfg)
{
    EFI_FILE_HANDLE dh;
    qb_err err;
    UINTN bufsize = SIZE_OF_EFI_FILE_INFO + 512 * sizeof(CHAR16);
    EFI_FILE_INFO *info;
    int first = cfg->count;
    bool full = false;

    if (open_file(root, dir, &dh, &err) < 0) {
        if (err.code != QB_ENOENT)
            qb_stick_config_note(cfg, "%s: %s", dir, err.msg);
        return;
    }
    info = qb_malloc(&qb_efi_alloc, bufsize);
    for (;;) {
        UINTN size = bufsize;
        char name[QB_STICK_IMAGE_MAX * 3], path[QB_STICK_IMAGE_MAX];
        EFI_STATUS st;

        if (!info)
            break;
        st = dh->Read(dh, &size, info);
        if (st == EFI_BUFFER_TOO_SMALL) {
            qb_free(&qb_efi_alloc, info);
            bufsize = size;
            info = qb_malloc(&qb_efi_alloc, bufsize);
            continue;
        }
        if (st != EFI_SUCCESS) {
            qb_stick_config_note(cfg, "%s: cannot read the directory: %s", dir,
                                 qb_efi_strstatus(st));
            break;
        }
        if (size == 0)
            break;
        if (info->Attribute & EFI_FILE_DIRECTORY)
            continue;
        if (qb_utf16_to_utf8(info->FileName, name, sizeof name) >= sizeof name ||
            !qb_stick_is_image_name(name))
            continue;
        if (qb_efi_path_join(dir, name, path, sizeof path) < 0)
            continue;
        if (qb_stick_config_add(cfg, path) < 0)
            full = true;
    }
    qb_free(&qb_efi_alloc, info);
    dh->Close(dh);
    if (full)
        qb_stick_config_note(cfg, "more than %d images on the stick: not all are listed",
                             QB_STICK_MAX_ENTRIES);
    /* Name order (insertion sort; a few dozen entries at most). */
    for (int i = first + 1; i < cfg->count; i++) {
        qb_stick_entry e = cfg->entry[i];
        int j = i;
        while (j > first && cmp_nocase(cfg->entry[j - 1].image, e.image) > 0) {
            cfg->entry[j] = cfg->entry[j - 1];
            j--;
        }
        cfg->entry[j] = e;
    }
}

/* --- the loop ------------------------------------------------------------------ */

static void reset(const qb_env *env, EFI_RESET_TYPE how)
{
    RT->ResetSystem(how, EFI_SUCCESS, 0, NULL);
    qb_printf(&env->err, "%s: the firmware did not %s\n", env->program,
              how == EfiResetShutdown ? "power off" : "reboot");
}

static bool started_by_shell(void)
{
    CHAR16 **argv = NULL;

    return GetShellArgcArgv(qb_efi_image, &argv) > 0;
}

/* Boots entry i; its messages and status go into the notice. */
static void boot_entry(const qb_env *env, const qb_stick_config *cfg, int i, char *notice)
{
    const qb_stick_entry *e = &cfg->entry[i];
    capture *cap = qb_zalloc(&qb_efi_alloc, sizeof *cap);
    tee tout, terr;
    qb_env benv = *env;
    int status;

    if (ST->ConOut) {
        ST->ConOut->SetAttribute(ST->ConOut, EFI_TEXT_ATTR(EFI_LIGHTGRAY, EFI_BLACK));
        ST->ConOut->ClearScreen(ST->ConOut);
    }
    if (e->snapshot[0])
        qb_printf(&env->out, "Booting %d. %s (%s, snapshot %s, %s)...\n", i + 1, e->title,
                  e->image, e->snapshot, qb_efi_mode_name(e->mode));
    else
        qb_printf(&env->out, "Booting %d. %s (%s, %s)...\n", i + 1, e->title, e->image,
                  qb_efi_mode_name(e->mode));
    if (cap) {
        tout.to = &env->out;
        tout.cap = cap;
        terr.to = &env->err;
        terr.cap = cap;
        benv.out.ctx = &tout;
        benv.out.write = tee_write;
        benv.err.ctx = &terr;
        benv.err.write = tee_write;
    }
    status = qb_efi_boot(&benv, e->image, e->snapshot[0] ? e->snapshot : NULL, e->mode);
    /* The guest may have changed the console. */
    if (ST->ConOut) {
        ST->ConOut->SetAttribute(ST->ConOut, EFI_TEXT_ATTR(EFI_LIGHTGRAY, EFI_BLACK));
        ST->ConOut->EnableCursor(ST->ConOut, TRUE);
    }
    notice[0] = '\0';
    if (status == 0)
        notice_add(notice, "%d. %s returned (status 0).\n", i + 1, e->title);
    else
        notice_add(notice, "%d. %s failed (status %d):\n", i + 1, e->title, status);
    qb_printf(&env->err, "%s", notice);
    if (cap) {
        notice_add_capture(notice, cap);
        qb_free(&qb_efi_alloc, cap);
    }
}

int qb_efi_stick_main(const qb_env *env)
{
    qb_stick_config *cfg;
    EFI_FILE_HANDLE root;
    qb_err err;
    char dir[QB_STICK_IMAGE_MAX], path[QB_STICK_IMAGE_MAX];
    char *config_notice, *notice;
    const char *labels[QB_STICK_MAX_ENTRIES];
    char (*label_text)[QB_STICK_TITLE_MAX + 16];
    bool found = false;
    qb_menu menu;

    if (started_by_shell()) {
        char *none[] = { NULL };
        return qb_cmd_main(env, 0, none);
    }
    cfg = qb_malloc(&qb_efi_alloc, sizeof *cfg);
    config_notice = qb_malloc(&qb_efi_alloc, NOTICE_SIZE);
    notice = qb_malloc(&qb_efi_alloc, NOTICE_SIZE);
    label_text = qb_malloc(&qb_efi_alloc, QB_STICK_MAX_ENTRIES * sizeof *label_text);
    if (!cfg || !config_notice || !notice || !label_text) {
        qb_printf(&env->err, "%s: out of memory\n", env->program);
        qb_free(&qb_efi_alloc, cfg);
        qb_free(&qb_efi_alloc, config_notice);
        qb_free(&qb_efi_alloc, notice);
        qb_free(&qb_efi_alloc, label_text);
        return 1;
    }
    qb_stick_config_init(cfg);
    config_notice[0] = notice[0] = '\0';

    if (qb_efi_volume_root("", &root, &err) < 0) {
        qb_stick_config_note(cfg, "%s", err.msg);
        root = NULL;
    }
    own_dir(dir, sizeof dir);
    for (int pass = 0; root && pass < 2 && !found; pass++) {
        char *data = NULL;
        size_t len = 0;

        if (pass == 1 && strcmp(dir, "\\") == 0)
            break;
        if (qb_efi_path_join(pass == 0 ? dir : "\\", QB_STICK_CONFIG_NAME, path,
                             sizeof path) < 0)
            continue;
        if (read_config(root, path, &data, &len, &err) < 0) {
            if (err.code != QB_ENOENT)
                qb_stick_config_note(cfg, "%s", err.msg);
            continue;
        }
        found = true;
        qb_stick_config_parse(cfg, path, data, len);
        qb_free(&qb_efi_alloc, data);
    }
    if (root && cfg->count == 0) {
        scan_dir(root, "\\", cfg);
        scan_dir(root, "\\images", cfg);
        if (cfg->count == 0 && found)
            qb_stick_config_note(cfg, "Nothing to boot: no entries in %s, no *.qcow2 files "
                                 "in \\ or \\images.", path);
        else if (cfg->count == 0)
            qb_stick_config_note(cfg, "Nothing to boot: no *.qcow2 files in \\ or \\images "
                                 "on this volume.");
    }
    if (root)
        root->Close(root);
    qb_stick_config_resolve(cfg);

    for (int k = 0; k < cfg->nmsgs; k++) {
        notice_add(config_notice, "%s\n", cfg->msg[k]);
        qb_printf(&env->err, "%s: %s\n", env->program, cfg->msg[k]);
    }
    if (cfg->dropped_msgs)
        notice_add(config_notice, "(and %d more problems)\n", cfg->dropped_msgs);
    /* The title, and the mode when the guest's writes do not reach the
     * image. */
    for (int k = 0; k < cfg->count; k++) {
        const qb_stick_entry *e = &cfg->entry[k];
        if (e->mode == QB_EFI_READ_WRITE && !e->snapshot[0])
            qb_snprintf(label_text[k], sizeof label_text[k], "%s", e->title);
        else
            qb_snprintf(label_text[k], sizeof label_text[k], "%s [%s]", e->title,
                        qb_efi_mode_name(e->mode == QB_EFI_READ_WRITE ? QB_EFI_READ_ONLY
                                                                      : e->mode));
        labels[k] = label_text[k];
    }

    memset(&menu, 0, sizeof menu);
    menu.heading = "qcowboot: choose the image to boot";
    menu.count = cfg->count;
    menu.labels = labels;
    menu.selected = cfg->default_index;
    menu.timeout = cfg->timeout == QB_STICK_TIMEOUT_UNSET ? QB_STICK_DEFAULT_TIMEOUT
                                                          : cfg->timeout;
    for (;;) {
        char *shown = qb_malloc(&qb_efi_alloc, 2 * NOTICE_SIZE);
        int choice;

        if (shown) {
            qb_snprintf(shown, 2 * NOTICE_SIZE, "%s%s", config_notice, notice);
            menu.notice = shown;
        } else {
            menu.notice = notice[0] ? notice : config_notice;
        }
        choice = qb_menu_run(&menu);
        qb_free(&qb_efi_alloc, shown);
        if (choice >= 0) {
            boot_entry(env, cfg, choice, notice);
            /* No countdown after a boot: a broken entry must not loop. */
            menu.selected = choice;
            menu.timeout = QB_STICK_NO_TIMEOUT;
        } else if (choice == QB_MENU_REBOOT) {
            reset(env, EfiResetCold);
        } else if (choice == QB_MENU_POWEROFF) {
            reset(env, EfiResetShutdown);
        } else {
            qb_printf(&env->out, "Returning to the firmware.\n");
            break;
        }
    }
    qb_free(&qb_efi_alloc, cfg);
    qb_free(&qb_efi_alloc, config_notice);
    qb_free(&qb_efi_alloc, notice);
    qb_free(&qb_efi_alloc, label_text);
    return 0;
}
