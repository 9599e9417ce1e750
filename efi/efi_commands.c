/*
 * The firmware-only commands: boot, mount, unmount, bench. Their options
 * are parsed like the engine's commands (qb_getopt); each has --help.
 * `help` lists them after the engine's commands.
 */
#include <string.h>
#include "efi_disk.h"
#include "qb_cmd_internal.h"

/* What boot and mount say about --readonly and --volatile. */
#define MODE_HELP                                                                        \
    "  --readonly           refuse the guest's writes\n"                                  \
    "  --volatile           keep the guest's writes in memory, dropped with the disk;\n"  \
    "                       the image is not written\n"                                   \
    "An image that cannot be written (read-only file or medium, marked corrupt)\n"        \
    "is attached read-only with a warning. The mode in use is printed.\n"

typedef struct command {
    const char *name;
    const char *usage;      /* after the program and command names */
    const char *help;       /* the rest of --help */
    const char *usage2;     /* a second form, or NULL */
} command;

static const command commands[] = {
    { "boot", "[--snapshot NAME] [--readonly | --volatile] IMAGE",
      "Boots the guest in IMAGE: publishes its virtual disk, finds the EFI system\n"
      "partition (GPT, or MBR type 0xEF) and starts \\EFI\\BOOT\\BOOTX64.EFI from it\n"
      "through the firmware, so Secure Boot applies. If the boot loader returns,\n"
      "reports its status and removes the disk. The disk is read-write: what the\n"
      "guest writes before it leaves the firmware goes into the image.\n"
      "  -l, --snapshot NAME  boot the internal snapshot NAME (id or name; read-only)\n"
      MODE_HELP
      "  --ramdisk            copy the whole virtual disk into memory the OS keeps and\n"
      "                       boot from the firmware's RAM disk (EFI_RAM_DISK_PROTOCOL),\n"
      "                       which the OS finds in the ACPI NFIT (Linux: /dev/pmem0);\n"
      "                       writes go to memory only, the image is not written\n",
      "--ramdisk [--snapshot NAME] IMAGE" },
    { "mount", "[--snapshot NAME] [--readonly | --volatile] [IMAGE]",
      "Attaches IMAGE as a read-write disk that stays after the command returns\n"
      "(" QB_EFI_DRIVER_FILE ", next to " QB_EFI_PROGRAM ", holds it): 'map -r' then\n"
      "lists its file systems. Without IMAGE, lists the attached images.\n"
      "  -l, --snapshot NAME  attach the internal snapshot NAME (id or name; read-only)\n"
      MODE_HELP, NULL },
    { "unmount", "[IMAGE]",
      "Detaches IMAGE (every snapshot of it), or every attached image.\n", NULL },
    { "bench", "[--raw FILE] [--snapshot NAME] IMAGE",
      "Reads the whole virtual disk of IMAGE through its Block I/O in 1 MiB requests,\n"
      "then as many bytes of a file through the file protocol, and prints both\n"
      "rates in MB/s and their ratio.\n"
      "  --raw FILE           the file to compare with (default: IMAGE itself)\n"
      "  -l, --snapshot NAME  read the internal snapshot NAME\n", NULL },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

enum { OPT_HELP = 256, OPT_SNAPSHOT, OPT_RAW, OPT_READONLY, OPT_VOLATILE, OPT_RAMDISK };

static const qb_longopt longopts[] = {
    { "help", false, OPT_HELP },
    { "snapshot", true, OPT_SNAPSHOT },
    { "raw", true, OPT_RAW },
    { "readonly", false, OPT_READONLY },
    { "volatile", false, OPT_VOLATILE },
    { "ramdisk", false, OPT_RAMDISK },
    { NULL, false, 0 },
};

static void usage_line(const qb_out *o, const qb_env *env, const command *c)
{
    qb_printf(o, "Usage: %s %s %s\n", env->program, c->name, c->usage);
    if (c->usage2)
        qb_printf(o, "       %s %s %s\n", env->program, c->name, c->usage2);
}

static int usage_error(const qb_env *env, const command *c)
{
    usage_line(&env->err, env, c);
    qb_printf(&env->err, "Run '%s %s --help' for details.\n", env->program, c->name);
    return 1;
}

static int run(const qb_env *env, const command *c, int argc, char **argv)
{
    const char *snapshot = NULL, *raw = NULL, *image;
    bool takes_snapshot = strcmp(c->name, "unmount") != 0;
    bool needs_image = strcmp(c->name, "boot") == 0 || strcmp(c->name, "bench") == 0;
    bool takes_mode = strcmp(c->name, "boot") == 0 || strcmp(c->name, "mount") == 0;
    qb_efi_mode mode = QB_EFI_MODE_UNSET;
    qb_getopt g;
    int opt;

    qb_getopt_init(&g, argc, argv, &env->err);
    while ((opt = qb_getopt_next(&g, takes_snapshot ? "hl:" : "h", longopts)) != -1) {
        switch (opt) {
        case 'h':
        case OPT_HELP:
            usage_line(&env->out, env, c);
            qb_printf(&env->out, "%s", c->help);
            return 0;
        case 'l':
        case OPT_SNAPSHOT:
            if (!takes_snapshot)
                return usage_error(env, c);
            snapshot = g.arg;
            break;
        case OPT_RAW:
            if (strcmp(c->name, "bench") != 0)
                return usage_error(env, c);
            raw = g.arg;
            break;
        case OPT_READONLY:
        case OPT_VOLATILE:
        case OPT_RAMDISK: {
            qb_efi_mode m = opt == OPT_READONLY   ? QB_EFI_READ_ONLY
                            : opt == OPT_VOLATILE ? QB_EFI_VOLATILE
                                                  : QB_EFI_RAMDISK;
            /* A RAM disk is only for booting. */
            if (!takes_mode || (mode != QB_EFI_MODE_UNSET && mode != m) ||
                (m == QB_EFI_RAMDISK && strcmp(c->name, "boot") != 0))
                return usage_error(env, c);
            mode = m;
            break;
        }
        default:
            return usage_error(env, c);
        }
    }
    if (argc - g.index > 1 || (needs_image && argc - g.index != 1))
        return usage_error(env, c);
    image = g.index < argc ? argv[g.index] : NULL;

    if (strcmp(c->name, "boot") == 0)
        return qb_efi_boot(env, image, snapshot, mode);
    if (strcmp(c->name, "bench") == 0)
        return qb_efi_bench(env, image, snapshot, raw);
    if (strcmp(c->name, "mount") == 0) {
        if (!image) {
            if (snapshot || mode != QB_EFI_MODE_UNSET)
                return usage_error(env, c);
            return qb_efi_mount_list(env);
        }
        return qb_efi_mount(env, image, snapshot, mode);
    }
    return qb_efi_unmount(env, image);
}

int qb_efi_command(const qb_env *env_in, int argc, char **argv)
{
    qb_env local = *env_in;
    const qb_env *env = &local;
    const command *c = NULL;

    /* The global --cache-size, as the engine's commands take it; anything
     * wrong with it is left to them to report. */
    while (argc >= 1 && strncmp(argv[0], "--cache-size", 12) == 0 &&
           (argv[0][12] == '=' || argv[0][12] == '\0')) {
        const char *v = argv[0][12] == '=' ? argv[0] + 13 : argc >= 2 ? argv[1] : NULL;
        uint64_t bytes;
        int used = argv[0][12] == '=' ? 1 : 2;

        if (!v || !qb_parse_size(v, &bytes) || bytes > (1ull << 32))
            return -1;
        local.l2_cache_bytes = (size_t)bytes;
        argc -= used;
        argv += used;
    }
    if (argc < 1)
        return -1;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[0], commands[i].name) == 0)
            c = &commands[i];
    /* The resident driver runs `mount` and nothing else: anything it
     * returns success for keeps it in memory. */
    if (qb_efi_is_driver() && (!c || strcmp(c->name, "mount") != 0 || argc < 2)) {
        qb_efi_error(env, "%s only attaches disks for '%s mount'", QB_EFI_DRIVER_FILE,
                     QB_EFI_PROGRAM);
        return 1;
    }
    if (c)
        return run(env, c, argc, argv);
    if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0 ||
        strcmp(argv[0], "-h") == 0) {
        int status = qb_cmd_main(env, argc, argv);
        qb_printf(&env->out, "Firmware commands:\n");
        for (size_t i = 0; i < NCOMMANDS; i++) {
            qb_printf(&env->out, "  %s %s\n", commands[i].name, commands[i].usage);
            if (commands[i].usage2)
                qb_printf(&env->out, "  %s %s\n", commands[i].name, commands[i].usage2);
        }
        return status;
    }
    return -1;
}
