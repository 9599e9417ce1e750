/* Canonical UEFI shell paths: device prefix, '\' separators, no "." or "..". */
#include "efi_path.h"

static int is_sep(char c)
{
    return c == '\\' || c == '/';
}

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

int qb_efi_path_devlen(const char *path)
{
    int i;

    for (i = 0; path[i] && path[i] != ':'; i++)
        if (is_sep(path[i]))
            return -1;
    return path[i] == ':' && i > 0 ? i : -1;
}

int qb_efi_path_is_rooted(const char *path)
{
    int dl = qb_efi_path_devlen(path);

    return is_sep(path[dl < 0 ? 0 : dl + 1]);
}

static int same_device(const char *a, int alen, const char *b, int blen)
{
    if (alen != blen)
        return 0;
    for (int i = 0; i < alen; i++)
        if (upper(a[i]) != upper(b[i]))
            return 0;
    return 1;
}

int qb_efi_path_same_dev(const char *a, const char *b)
{
    int al = qb_efi_path_devlen(a), bl = qb_efi_path_devlen(b);

    return al >= 0 && same_device(a, al, b, bl);
}

/* Appends the components of `src` (after any device prefix has been taken
 * off) to out[0..*len), which holds a root of root_len bytes. */
static int add_components(char *out, size_t size, size_t *len, size_t root_len,
                          const char *src)
{
    while (*src) {
        size_t n = 0;

        while (is_sep(*src))
            src++;
        while (src[n] && !is_sep(src[n]))
            n++;
        if (n == 0 || (n == 1 && src[0] == '.')) {
            /* empty or "." */
        } else if (n == 2 && src[0] == '.' && src[1] == '.') {
            while (*len > root_len && out[*len - 1] != '\\')
                (*len)--;
            if (*len > root_len)
                (*len)--;           /* the separator before the component */
        } else {
            size_t sep = *len > root_len ? 1 : 0;
            if (*len + sep + n + 1 > size)
                return -1;
            if (sep)
                out[(*len)++] = '\\';
            for (size_t i = 0; i < n; i++)
                out[(*len)++] = src[i];
        }
        src += n;
    }
    return 0;
}

int qb_efi_path_join(const char *dir, const char *name, char *out, size_t size)
{
    int ndev = qb_efi_path_devlen(name);
    int ddev = dir ? qb_efi_path_devlen(dir) : -1;
    const char *dev, *base, *rest;
    int devlen;
    size_t len = 0, root_len;

    if (ndev >= 0) {
        dev = name; devlen = ndev;
        rest = name + ndev + 1;
        /* "DEV:x" continues from dir only when dir is on that device. */
        if (!is_sep(*rest) && dir && same_device(name, ndev, dir, ddev))
            base = dir + ddev + 1;
        else
            base = "";
    } else {
        if (!dir)
            return -1;
        dev = dir; devlen = ddev < 0 ? 0 : ddev;
        rest = name;
        base = is_sep(*name) ? "" : dir + (ddev < 0 ? 0 : ddev + 1);
    }

    if ((size_t)devlen + 3 > size)
        return -1;
    for (int i = 0; i < devlen; i++)
        out[len++] = upper(dev[i]);
    if (devlen > 0)
        out[len++] = ':';
    out[len++] = '\\';
    root_len = len;
    if (add_components(out, size, &len, root_len, base) < 0 ||
        add_components(out, size, &len, root_len, rest) < 0)
        return -1;
    out[len] = '\0';
    return 0;
}

int qb_efi_path_dirname(const char *path, char *out, size_t size)
{
    int dl = qb_efi_path_devlen(path);
    size_t root_len = (size_t)(dl < 0 ? 0 : dl + 1) + 1;   /* "DEV:\" */
    size_t end = 0;

    for (size_t i = 0; path[i]; i++)
        if (is_sep(path[i]))
            end = i;
    if (end < root_len)
        end = root_len;     /* the parent of a file at the root is the root */
    if (end + 1 > size)
        return -1;
    for (size_t i = 0; i < end; i++)
        out[i] = path[i];
    out[end] = '\0';
    return 0;
}
