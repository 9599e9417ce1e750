/* The time-stamp counter as a clock (see efi_clock.h). */
#include <efi.h>
#include <efilib.h>
#include "efi_clock.h"

uint64_t qb_efi_ticks(void)
{
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
#else
#error "no cycle counter for this architecture"
#endif
}

uint64_t qb_efi_ticks_per_second(uint32_t calibration_us)
{
    uint64_t t0 = qb_efi_ticks();

    BS->Stall(calibration_us);
    return (qb_efi_ticks() - t0) * (1000000u / calibration_us);
}

uint64_t qb_efi_ticks_to_us(uint64_t ticks, uint64_t hz)
{
    uint64_t us = hz ? ticks / hz * 1000000u + ticks % hz * 1000000u / hz : 0;
    return us ? us : 1;
}
