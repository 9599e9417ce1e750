/* `info`: what an image is, in qemu-img info's words (text or JSON). */
#include <string.h>
#include "qb_cmd_internal.h"
#include "qb_image_internal.h"
#include "qb_fmt.h"
#include "qb_path.h"

static const char *compression_name(const qcow2 *q)
{
    return q->h.compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib";
}

static const char *bool_str(bool b)
{
    return b ? "true" : "false";
}

/* Civil date from days since 1970-01-01 (UTC), for the snapshot list. */
static void format_date(char *buf, size_t cap, uint64_t secs)
{
    uint64_t days = secs / 86400, rem = secs % 86400;
    int64_t z = (int64_t)days + 719468;
    int64_t era = z / 146097;
    uint64_t doe = (uint64_t)(z - era * 146097);
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    uint64_t d = doy - (153 * mp + 2) / 5 + 1;
    uint64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    qb_snprintf(buf, cap, "%04lld-%02llu-%02llu %02llu:%02llu:%02llu", (long long)y,
                (unsigned long long)m, (unsigned long long)d, (unsigned long long)(rem / 3600),
                (unsigned long long)(rem / 60 % 60), (unsigned long long)(rem % 60));
}

static void feature_list(const qb_out *o, const qcow2 *q, unsigned type, uint64_t bits, bool json)
{
    bool first = true;
    for (unsigned b = 0; b < 64; b++) {
        if (!(bits & (1ull << b)))
            continue;
        char label[96];
        if (type == 1 && b == 0)
            qb_snprintf(label, sizeof(label), "lazy refcounts");
        else if (type == 2 && b == 0)
            qb_snprintf(label, sizeof(label), "bitmaps");
        else if (type == 2 && b == 1)
            qb_snprintf(label, sizeof(label), "raw external data");
        else
            qcow2_feature_label(q, type, b, label, sizeof(label));
        if (json) {
            qb_puts(o, first ? "" : ", ");
            qb_json_string(o, label);
        } else {
            qb_printf(o, "%s%s", first ? "" : ", ", label);
        }
        first = false;
    }
    if (first && !json)
        qb_puts(o, "none");
}

void qb_snapshot_table(const qb_out *o, const qcow2 *q)
{
    qb_printf(o, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
              "ICOUNT");
    for (uint32_t i = 0; i < q->nb_snapshots; i++) {
        const qcow2_snapshot *sn = &q->snapshots[i];
        char size[32], date[32], clock[32], icount[24] = "";
        qb_format_size(size, sizeof(size), sn->vm_state_size);
        format_date(date, sizeof(date), sn->date_sec);
        uint64_t ms = sn->vm_clock_nsec / 1000000;
        qb_snprintf(clock, sizeof(clock), "%02llu:%02llu:%02llu.%03llu",
                    (unsigned long long)(ms / 3600000), (unsigned long long)(ms / 60000 % 60),
                    (unsigned long long)(ms / 1000 % 60), (unsigned long long)(ms % 1000));
        if (sn->icount != UINT64_MAX)
            qb_snprintf(icount, sizeof(icount), "%llu", (unsigned long long)sn->icount);
        qb_printf(o, "%-9s %-16s %8s %19s %12s %10s\n", sn->id, sn->name, size, date, clock,
                  icount);
    }
}

static void info_text(const qb_out *o, const qb_image *img)
{
    char size[32];
    qb_format_size(size, sizeof(size), img->size);
    qb_printf(o, "image: %s\n", img->filename);
    qb_printf(o, "file format: %s\n", qb_image_format(img));
    qb_printf(o, "virtual size: %s (%llu bytes)\n", size, (unsigned long long)img->size);
    if (!img->is_qcow2)
        return;
    const qcow2 *q = &img->q;
    if (q->h.crypt_method)
        qb_puts(o, "encrypted: yes\n");
    qb_printf(o, "cluster_size: %llu\n", (unsigned long long)q->cluster_size);
    if (q->backing_file[0]) {
        qb_printf(o, "backing file: %s", q->backing_file);
        if (img->backing && strcmp(img->backing->filename, q->backing_file) != 0)
            qb_printf(o, " (actual path: %s)", img->backing->filename);
        qb_puts(o, "\n");
        if (q->has_backing_format)
            qb_printf(o, "backing file format: %s\n", q->backing_format);
    }
    if (q->nb_snapshots) {
        qb_puts(o, "Snapshot list:\n");
        qb_snapshot_table(o, q);
    }
    qb_puts(o, "Format specific information:\n");
    qb_printf(o, "    compat: %s\n", q->h.version == 2 ? "0.10" : "1.1");
    qb_printf(o, "    compression type: %s\n", compression_name(q));
    if (q->h.version == 3) {
        qb_printf(o, "    lazy refcounts: %s\n",
                  bool_str(q->h.compatible & QCOW2_COMPAT_LAZY_REFCOUNTS));
    }
    qb_printf(o, "    refcount bits: %u\n", 1u << q->h.refcount_order);
    if (q->h.version == 3) {
        qb_printf(o, "    corrupt: %s\n", bool_str(q->h.incompatible & QCOW2_INCOMPAT_CORRUPT));
        if (q->has_data_file_name) {
            qb_printf(o, "    data file: %s\n", q->data_file_name);
            qb_printf(o, "    data file raw: %s\n",
                      bool_str(q->h.autoclear & QCOW2_AUTOCLEAR_DATA_RAW));
        }
        qb_printf(o, "    extended l2: %s\n", bool_str(q->h.incompatible & QCOW2_INCOMPAT_EXTL2));
        if (q->has_bitmaps_ext)
            qb_printf(o, "    bitmaps: %u\n", q->nb_bitmaps);
    }
    qb_printf(o, "    dirty: %s\n", bool_str(q->h.incompatible & QCOW2_INCOMPAT_DIRTY));
    qb_puts(o, "    incompatible features: ");
    feature_list(o, q, 0, q->h.incompatible, false);
    qb_puts(o, "\n    compatible features: ");
    feature_list(o, q, 1, q->h.compatible, false);
    qb_puts(o, "\n    autoclear features: ");
    feature_list(o, q, 2, q->h.autoclear, false);
    qb_puts(o, "\n");
}

static void info_json(const qb_out *o, const qb_image *img, const char *indent)
{
    qb_printf(o, "%s{\n", indent);
    qb_printf(o, "%s    \"virtual-size\": %llu,\n", indent, (unsigned long long)img->size);
    qb_printf(o, "%s    \"filename\": ", indent);
    qb_json_string(o, img->filename);
    qb_printf(o, ",\n%s    \"format\": \"%s\"", indent, qb_image_format(img));
    if (!img->is_qcow2)
        qb_printf(o, ",\n%s    \"dirty-flag\": false", indent);
    if (img->is_qcow2) {
        const qcow2 *q = &img->q;
        const char *in = indent;
        qb_printf(o, ",\n%s    \"cluster-size\": %llu", in, (unsigned long long)q->cluster_size);
        if (q->backing_file[0]) {
            qb_printf(o, ",\n%s    \"backing-filename\": ", in);
            qb_json_string(o, q->backing_file);
            qb_printf(o, ",\n%s    \"full-backing-filename\": ", in);
            char full[QB_PATH_MAX];
            if (img->backing)
                qb_json_string(o, img->backing->filename);
            else if (qb_path_combine(full, sizeof(full), img->filename, q->backing_file))
                qb_json_string(o, full);
            else
                qb_json_string(o, q->backing_file);
            if (q->has_backing_format) {
                qb_printf(o, ",\n%s    \"backing-filename-format\": ", in);
                qb_json_string(o, q->backing_format);
            }
        }
        if (q->h.crypt_method)
            qb_printf(o, ",\n%s    \"encrypted\": true", in);
        qb_printf(o, ",\n%s    \"dirty-flag\": %s", in,
                  bool_str(q->h.incompatible & QCOW2_INCOMPAT_DIRTY));
        if (q->nb_snapshots) {
            qb_printf(o, ",\n%s    \"snapshots\": [", in);
            for (uint32_t i = 0; i < q->nb_snapshots; i++) {
                const qcow2_snapshot *sn = &q->snapshots[i];
                qb_printf(o, "%s\n%s        {\n%s            \"id\": ", i ? "," : "", in, in);
                qb_json_string(o, sn->id);
                qb_printf(o, ",\n%s            \"name\": ", in);
                qb_json_string(o, sn->name);
                qb_printf(o,
                          ",\n%s            \"vm-state-size\": %llu,\n"
                          "%s            \"date-sec\": %u,\n"
                          "%s            \"date-nsec\": %u,\n"
                          "%s            \"vm-clock-sec\": %llu,\n"
                          "%s            \"vm-clock-nsec\": %llu",
                          in, (unsigned long long)sn->vm_state_size, in, sn->date_sec, in,
                          sn->date_nsec, in, (unsigned long long)(sn->vm_clock_nsec / 1000000000),
                          in, (unsigned long long)(sn->vm_clock_nsec % 1000000000));
                if (sn->icount != UINT64_MAX)
                    qb_printf(o, ",\n%s            \"icount\": %llu", in,
                              (unsigned long long)sn->icount);
                qb_printf(o, "\n%s        }", in);
            }
            qb_printf(o, "\n%s    ]", in);
        }
        qb_printf(o, ",\n%s    \"format-specific\": {\n%s        \"type\": \"qcow2\",\n"
                     "%s        \"data\": {\n",
                  in, in, in);
        qb_printf(o, "%s            \"compat\": \"%s\",\n", in, q->h.version == 2 ? "0.10" : "1.1");
        qb_printf(o, "%s            \"compression-type\": \"%s\",\n", in, compression_name(q));
        if (q->h.version == 3)
            qb_printf(o, "%s            \"lazy-refcounts\": %s,\n", in,
                      bool_str(q->h.compatible & QCOW2_COMPAT_LAZY_REFCOUNTS));
        qb_printf(o, "%s            \"refcount-bits\": %u", in, 1u << q->h.refcount_order);
        if (q->h.version == 3) {
            qb_printf(o, ",\n%s            \"corrupt\": %s", in,
                      bool_str(q->h.incompatible & QCOW2_INCOMPAT_CORRUPT));
            if (q->has_data_file_name) {
                qb_printf(o, ",\n%s            \"data-file\": ", in);
                qb_json_string(o, q->data_file_name);
                qb_printf(o, ",\n%s            \"data-file-raw\": %s", in,
                          bool_str(q->h.autoclear & QCOW2_AUTOCLEAR_DATA_RAW));
            }
            qb_printf(o, ",\n%s            \"extended-l2\": %s", in,
                      bool_str(q->h.incompatible & QCOW2_INCOMPAT_EXTL2));
        }
        qb_printf(o, "\n%s        }\n%s    }", in, in);
        qb_printf(o, ",\n%s    \"incompatible-features\": [", in);
        feature_list(o, q, 0, q->h.incompatible, true);
        qb_printf(o, "],\n%s    \"compatible-features\": [", in);
        feature_list(o, q, 1, q->h.compatible, true);
        qb_printf(o, "],\n%s    \"autoclear-features\": [", in);
        feature_list(o, q, 2, q->h.autoclear, true);
        qb_puts(o, "]");
    }
    qb_printf(o, "\n%s}", indent);
}

static void help(const qb_out *o)
{
    qb_puts(o, "Usage: info [--json] [--backing-chain] [-f FMT] IMAGE\n"
               "Shows the format, virtual size, cluster size, backing file, compression,\n"
               "feature bits by name, dirty/corrupt state and snapshots of IMAGE.\n"
               "  --json            JSON with qemu-img's key names\n"
               "  --backing-chain   every image of the backing chain, top first\n"
               "  -f FMT            image format (qcow2 or raw; probed by default)\n");
}

int qb_cmd_info(const qb_env *env, int argc, char **argv)
{
    qb_image_args a;
    int rc = qb_cmd_image_args(env, argc, argv, true, help, &a);
    if (rc >= 0)
        return rc;
    bool json = a.json, chain = a.chain;
    qb_image *img;
    if (qb_cmd_open(env, a.image, a.format, NULL, !chain, &img))
        return 1;
    if (!chain) {
        if (json)
            info_json(&env->out, img, "");
        else
            info_text(&env->out, img);
        if (json)
            qb_puts(&env->out, "\n");
    } else if (json) {
        qb_puts(&env->out, "[\n");
        for (qb_image *l = img; l; l = l->backing) {
            info_json(&env->out, l, "    ");
            qb_puts(&env->out, l->backing ? ",\n" : "\n");
        }
        qb_puts(&env->out, "]\n");
    } else {
        for (qb_image *l = img; l; l = l->backing) {
            info_text(&env->out, l);
            if (l->backing)
                qb_puts(&env->out, "\n");
        }
    }
    qb_image_close(img);
    return 0;
}
