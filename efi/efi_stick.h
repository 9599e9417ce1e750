/*
 * Stick mode: what efi_stick.c (the unattended start), efi_config.c (the
 * config file) and efi_menu.c (the boot menu) offer each other. Plain C
 * with no firmware headers, so the host tests can compile the config
 * parser too.
 */
#ifndef QB_EFI_STICK_H
#define QB_EFI_STICK_H

#include <stddef.h>
#include "efi_mode.h"

/* The config file's name, looked for next to qcowboot.efi first (the
 * directory it was started from, \EFI\BOOT on a stick) and then at the
 * root of the same volume. */
#define QB_STICK_CONFIG_NAME "qcowboot.cfg"

#define QB_STICK_MAX_ENTRIES 32
#define QB_STICK_IMAGE_MAX 256   /* "\dir\file.qcow2" with its NUL */
#define QB_STICK_TITLE_MAX 80
#define QB_STICK_SNAPSHOT_MAX 128
#define QB_STICK_MAX_MSGS 8
#define QB_STICK_MSG_MAX 200

#define QB_STICK_DEFAULT_TIMEOUT 5   /* seconds, when nothing says otherwise */
#define QB_STICK_MAX_TIMEOUT 3600
#define QB_STICK_NO_TIMEOUT (-1)     /* wait for a key */
#define QB_STICK_TIMEOUT_UNSET (-2)

typedef struct qb_stick_entry {
    char image[QB_STICK_IMAGE_MAX];        /* rooted on our volume: "\images\a.qcow2" */
    char title[QB_STICK_TITLE_MAX];        /* what the menu shows */
    char snapshot[QB_STICK_SNAPSHOT_MAX];  /* internal snapshot; "" for the current state */
    qb_efi_mode mode;                      /* unset until qb_stick_config_resolve */
} qb_stick_entry;

typedef struct qb_stick_config {
    int count;
    qb_stick_entry entry[QB_STICK_MAX_ENTRIES];
    int default_index;  /* 0-based, set by qb_stick_config_resolve */
    int timeout;        /* seconds, QB_STICK_NO_TIMEOUT or QB_STICK_TIMEOUT_UNSET */
    qb_efi_mode default_mode;   /* `mode = ...`; entries without their own */
    /* `default = ...` as written, and where, for qb_stick_config_resolve. */
    char default_spec[QB_STICK_IMAGE_MAX];
    int default_line;
    char source[QB_STICK_IMAGE_MAX];   /* the file's name, for messages */
    /* Problems found, one line each ("\qcowboot.cfg, line 3: ..."). */
    int nmsgs;
    int dropped_msgs;   /* problems beyond QB_STICK_MAX_MSGS */
    char msg[QB_STICK_MAX_MSGS][QB_STICK_MSG_MAX];
} qb_stick_config;

/* Empties cfg: no entries, default 0, timeout unset, no messages. */
void qb_stick_config_init(qb_stick_config *cfg);

/* Parses the config text (UTF-8, `len` bytes, need not be NUL-terminated)
 * into cfg, which qb_stick_config_init prepared. `name` is the file's name
 * for messages. Never fails as a whole: a bad line is skipped and recorded
 * in cfg->msg. Returns the number of problems. */
int qb_stick_config_parse(qb_stick_config *cfg, const char *name, const char *text, size_t len);

/* Finds the entry `default = ...` names (a number from 1, a title or an
 * image path; entries from the file or found on the volume) and sets
 * cfg->default_index; a default that names nothing is noted and entry 1
 * is used. Gives every entry without a mode of its own the config's
 * (`mode = ...`, read-write when there is none). */
void qb_stick_config_resolve(qb_stick_config *cfg);

/* Records one more message in cfg (printf-style, qb_fmt's subset). */
void qb_stick_config_note(qb_stick_config *cfg, const char *fmt, ...);

/* Adds an entry for an image found on the volume (title: the path without
 * its leading '\'). Returns 0, or -1 when the table is full or the path
 * too long. */
int qb_stick_config_add(qb_stick_config *cfg, const char *image);

/* True for a file name ending in ".qcow2" (any case). */
int qb_stick_is_image_name(const char *name);

/* The boot menu (efi_menu.c): entries numbered from 1, then the actions
 * below. */
enum {
    QB_MENU_FIRMWARE = -1,   /* return to the firmware */
    QB_MENU_REBOOT = -2,
    QB_MENU_POWEROFF = -3,
};

typedef struct qb_menu {
    const char *heading;
    int count;                  /* entries */
    const char *const *labels;  /* count labels, UTF-8 */
    int selected;               /* entry highlighted first (and the default) */
    int timeout;                /* seconds until the selected entry is chosen; <0: none */
    const char *notice;         /* text shown under the menu ('\n' between lines), or NULL */
} qb_menu;

/* Shows the menu on the console and waits for a choice. Returns the index
 * of the chosen entry or one of QB_MENU_*. */
int qb_menu_run(const qb_menu *menu);

#endif
