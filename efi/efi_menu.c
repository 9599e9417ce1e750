/*
 * The boot menu of stick mode, on the firmware console (ConOut, which OVMF
 * and most firmware mirror to the serial port; ConIn, to which the
 * firmware's terminal driver feeds serial keys, arrows arriving as escape
 * sequences mapped to scan codes).
 *
 *   Up/Down, Home/End   move the highlight (entries, then the actions)
 *   Enter               boot the highlighted entry, or do the action
 *   1-9                 boot entry 1-9 at once
 *   q or Esc            return to the firmware (its boot manager)
 *   r                   reboot
 *   p                   power off
 *
 * While a countdown runs, the highlighted (default) entry boots when it
 * reaches zero; any key stops it and then does what it does. The menu is
 * drawn whole (a clear screen and one line per item, the highlighted one
 * marked with '>' as well as in reverse video, so a serial log shows it);
 * the countdown rewrites its own line every second.
 */
#include <string.h>
#include "qb_efi.h"
#include "qb_fmt.h"
#include "efi_stick.h"

#define NACTIONS 3
static const char *const action_label[NACTIONS] = {
    "Exit to the firmware (q)",
    "Reboot (r)",
    "Power off (p)",
};
static const int action_code[NACTIONS] = { QB_MENU_FIRMWARE, QB_MENU_REBOOT, QB_MENU_POWEROFF };

#define HELP "Up/Down and Enter to choose, 1-9 to boot an entry at once."
#define MAX_NOTICE_LINES 12
#define LINE_MAX 256
#define SECOND 10000000     /* timer periods are in 100 ns units */

#define ATTR_NORMAL EFI_TEXT_ATTR(EFI_LIGHTGRAY, EFI_BLACK)
#define ATTR_SELECTED EFI_TEXT_ATTR(EFI_BLACK, EFI_LIGHTGRAY)
#define ATTR_HEADING EFI_TEXT_ATTR(EFI_WHITE, EFI_BLACK)

typedef struct menu_state {
    const qb_menu *m;
    SIMPLE_TEXT_OUTPUT_INTERFACE *con;
    int total;          /* entries + actions */
    int sel;            /* 0..total-1 */
    int top;            /* first entry shown when they do not all fit */
    int visible;        /* entries shown at once */
    int remaining;      /* countdown seconds; <0: none */
    UINTN cols, rows;
    UINTN countdown_row;
} menu_state;

/* Writes UTF-8 text as at most `width` characters, cut or (with pad)
 * filled with blanks. Control characters show as '?', malformed bytes and
 * characters outside the BMP as U+FFFD. */
static void put_text(menu_state *s, const char *text, UINTN width, bool pad)
{
    CHAR16 buf[LINE_MAX];
    size_t len = 0;
    qb_utf8_dec dec = { 0, 0, 0 };

    if (width > LINE_MAX - 1)
        width = LINE_MAX - 1;
    for (const char *p = text; *p && len < width; p++) {
        uint32_t cp[2];
        unsigned k = qb_utf8_feed(&dec, (uint8_t)*p, cp);

        for (unsigned j = 0; j < k && len < width; j++) {
            uint32_t c = cp[j];
            if (c < 0x20 || c == 0x7f)
                c = '?';
            buf[len++] = c > 0xffff ? QB_UTF_REPLACEMENT : (CHAR16)c;
        }
    }
    while (pad && len < width)
        buf[len++] = ' ';
    buf[len] = 0;
    s->con->OutputString(s->con, buf);
}

/* One line of the menu. The last column stays empty: writing it wraps the
 * line on many consoles, and the "\r\n" would then leave an empty one. */
static void line(menu_state *s, const char *text, UINTN attr)
{
    s->con->SetAttribute(s->con, attr);
    put_text(s, text, s->cols - 1, attr == ATTR_SELECTED);
    s->con->SetAttribute(s->con, ATTR_NORMAL);
    s->con->OutputString(s->con, L"\r\n");
}

/* Past `n` characters of the UTF-8 text [p, end). */
static const char *skip_chars(const char *p, const char *end, UINTN n)
{
    while (p < end && n) {
        p++;
        while (p < end && ((unsigned char)*p & 0xc0) == 0x80)
            p++;
        n--;
    }
    return p;
}

/* Shows the notice, long lines wrapped, MAX_NOTICE_LINES rows at most (or
 * only counts them when `show` is false). Returns the number of rows. */
static int notice_rows(menu_state *s, const char *notice, bool show)
{
    char buf[LINE_MAX];
    int rows = 0;
    const char *p = notice;

    while (p && *p && rows < MAX_NOTICE_LINES) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);

        do {
            const char *q = skip_chars(p, end, s->cols - 1);
            size_t n = (size_t)(q - p);

            if (show) {
                if (n >= sizeof buf)
                    n = sizeof buf - 1;
                memcpy(buf, p, n);
                buf[n] = '\0';
                line(s, buf, ATTR_NORMAL);
            }
            rows++;
            p = q;
        } while (p < end && rows < MAX_NOTICE_LINES);
        p = nl ? nl + 1 : end;
    }
    return rows;
}

static void draw_countdown(menu_state *s)
{
    char buf[LINE_MAX] = "";

    s->con->SetCursorPosition(s->con, 0, s->countdown_row);
    if (s->remaining >= 0 && s->sel < s->m->count)
        qb_snprintf(buf, sizeof buf, "Booting \"%s\" in %d s (any key stops the countdown)",
                    s->m->labels[s->sel], s->remaining);
    put_text(s, buf, s->cols - 1, true);
}

static void draw(menu_state *s)
{
    const qb_menu *m = s->m;
    char buf[LINE_MAX];
    int nnotice = notice_rows(s, m->notice, false);
    /* Heading and blank, entries, blank, actions, blank, help, [blank,
     * notice], blank, countdown. */
    int fixed = 2 + 1 + NACTIONS + 1 + 1 + (nnotice ? 1 + nnotice : 0) + 2;

    s->visible = (int)s->rows - fixed;
    if (s->visible < 3)
        s->visible = 3;
    if (s->sel < m->count) {
        if (s->sel < s->top)
            s->top = s->sel;
        if (s->sel >= s->top + s->visible)
            s->top = s->sel - s->visible + 1;
    }
    if (s->top > m->count - s->visible)
        s->top = m->count > s->visible ? m->count - s->visible : 0;

    s->con->SetAttribute(s->con, ATTR_NORMAL);
    s->con->ClearScreen(s->con);
    line(s, m->heading, ATTR_HEADING);
    line(s, "", ATTR_NORMAL);
    if (m->count == 0)
        line(s, "  (nothing to boot)", ATTR_NORMAL);
    for (int i = s->top; i < m->count && i < s->top + s->visible; i++) {
        qb_snprintf(buf, sizeof buf, "%c %2d. %s", i == s->sel ? '>' : ' ', i + 1,
                    m->labels[i]);
        line(s, buf, i == s->sel ? ATTR_SELECTED : ATTR_NORMAL);
    }
    line(s, "", ATTR_NORMAL);
    for (int a = 0; a < NACTIONS; a++) {
        int i = m->count + a;
        qb_snprintf(buf, sizeof buf, "%c     %s", i == s->sel ? '>' : ' ', action_label[a]);
        line(s, buf, i == s->sel ? ATTR_SELECTED : ATTR_NORMAL);
    }
    line(s, "", ATTR_NORMAL);
    line(s, HELP, ATTR_NORMAL);
    if (nnotice) {
        line(s, "", ATTR_NORMAL);
        notice_rows(s, m->notice, true);
    }
    line(s, "", ATTR_NORMAL);
    s->countdown_row = (UINTN)s->con->Mode->CursorRow;
    draw_countdown(s);
}

/* The choice the highlighted item stands for. */
static int chosen(const menu_state *s)
{
    return s->sel < s->m->count ? s->sel : action_code[s->sel - s->m->count];
}

#define NO_CHOICE (-100)

/* Acts on a key: moves the highlight (and redraws) or returns a choice. */
static int on_key(menu_state *s, const EFI_INPUT_KEY *key)
{
    int old = s->sel;
    CHAR16 c = key->UnicodeChar;

    switch (key->ScanCode) {
    case SCAN_UP:
        if (s->sel > 0)
            s->sel--;
        break;
    case SCAN_DOWN:
        if (s->sel < s->total - 1)
            s->sel++;
        break;
    case SCAN_PAGE_UP:
        s->sel = s->sel > s->visible ? s->sel - s->visible : 0;
        break;
    case SCAN_PAGE_DOWN:
        s->sel = s->sel + s->visible < s->total ? s->sel + s->visible : s->total - 1;
        break;
    case SCAN_HOME:
        s->sel = 0;
        break;
    case SCAN_END:
        s->sel = s->total - 1;
        break;
    case SCAN_ESC:
        return QB_MENU_FIRMWARE;
    default:
        if (c == CHAR_CARRIAGE_RETURN || c == CHAR_LINEFEED)
            return chosen(s);
        if (c >= '1' && c <= '9' && c - '1' < s->m->count)
            return c - '1';
        if (c == 'q' || c == 'Q')
            return QB_MENU_FIRMWARE;
        if (c == 'r' || c == 'R')
            return QB_MENU_REBOOT;
        if (c == 'p' || c == 'P')
            return QB_MENU_POWEROFF;
        break;
    }
    if (s->sel != old)
        draw(s);
    return NO_CHOICE;
}

/* Waits for a key or the next second of the countdown. Returns 1 for a
 * key, 0 for a tick. Without a timer event it polls. */
static int wait_input(menu_state *s, EFI_EVENT timer)
{
    EFI_EVENT ev[2];
    UINTN idx = 0;

    if (s->remaining < 0 || timer) {
        ev[0] = ST->ConIn->WaitForKey;
        ev[1] = timer;
        if (BS->WaitForEvent(s->remaining >= 0 ? 2 : 1, ev, &idx) != EFI_SUCCESS)
            idx = 0;
        return idx == 0;
    }
    for (int ms = 0; ms < 1000; ms += 50) {
        if (BS->CheckEvent(ST->ConIn->WaitForKey) == EFI_SUCCESS)
            return 1;
        BS->Stall(50000);
    }
    return 0;
}

int qb_menu_run(const qb_menu *m)
{
    menu_state s;
    EFI_EVENT timer = NULL;
    EFI_INPUT_KEY key;
    int result = NO_CHOICE;

    memset(&s, 0, sizeof s);
    s.m = m;
    s.con = ST->ConOut;
    s.total = m->count + NACTIONS;
    /* With no entries, the first action. */
    s.sel = m->selected >= 0 && m->selected < m->count ? m->selected : 0;
    s.remaining = m->timeout >= 0 && m->count > 0 ? m->timeout : -1;
    if (s.con->QueryMode(s.con, (UINTN)s.con->Mode->Mode, &s.cols, &s.rows) != EFI_SUCCESS ||
        s.cols < 20 || s.rows < 10) {
        s.cols = 80;
        s.rows = 25;
    }
    s.con->EnableCursor(s.con, FALSE);
    draw(&s);

    if (!ST->ConIn) {
        /* Nobody can answer: the countdown, or back to the firmware. */
        if (s.remaining > 0)
            BS->Stall((UINTN)s.remaining * 1000000);
        result = s.remaining >= 0 ? s.sel : QB_MENU_FIRMWARE;
    } else if (s.remaining == 0 &&
               ST->ConIn->ReadKeyStroke(ST->ConIn, &key) != EFI_SUCCESS) {
        result = s.sel;
    } else if (s.remaining == 0) {
        s.remaining = -1;
        draw_countdown(&s);
        result = on_key(&s, &key);
    }
    if (result == NO_CHOICE && s.remaining > 0 &&
        (BS->CreateEvent(EVT_TIMER, 0, NULL, NULL, &timer) != EFI_SUCCESS ||
         BS->SetTimer(timer, TimerPeriodic, SECOND) != EFI_SUCCESS)) {
        if (timer)
            BS->CloseEvent(timer);
        timer = NULL;
    }
    while (result == NO_CHOICE) {
        if (!wait_input(&s, timer)) {
            if (s.remaining < 0)
                continue;
            if (--s.remaining <= 0) {
                result = s.sel;
                break;
            }
            draw_countdown(&s);
            continue;
        }
        if (ST->ConIn->ReadKeyStroke(ST->ConIn, &key) != EFI_SUCCESS)
            continue;
        if (s.remaining >= 0) {
            s.remaining = -1;
            draw_countdown(&s);
        }
        result = on_key(&s, &key);
    }
    if (timer) {
        BS->SetTimer(timer, TimerCancel, 0);
        BS->CloseEvent(timer);
    }
    s.con->SetCursorPosition(s.con, 0, s.countdown_row);
    s.con->EnableCursor(s.con, TRUE);
    s.con->OutputString(s.con, L"\r\n");
    return result;
}
