#include <string.h>
#include "qb_path.h"

bool qb_path_is_absolute(const char *name)
{
    if (name[0] == '/' || name[0] == '\\')
        return true;
    for (const char *p = name; *p && *p != '/' && *p != '\\'; p++)
        if (*p == ':')
            return true;   /* a device or protocol prefix: fs0:, file: */
    return false;
}

bool qb_path_combine(char *out, size_t cap, const char *base, const char *name)
{
    size_t dir = 0;
    if (!qb_path_is_absolute(name) && base) {
        for (size_t i = 0; base[i]; i++)
            if (base[i] == '/' || base[i] == '\\' || (base[i] == ':' && !dir))
                dir = i + 1;
    }
    size_t nl = strlen(name);
    if (dir + nl + 1 > cap)
        return false;
    if (dir)
        memcpy(out, base, dir);
    memcpy(out + dir, name, nl + 1);
    return true;
}
