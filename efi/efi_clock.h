/* A clock for measuring in firmware: the CPU's time-stamp counter,
 * calibrated against the boot services' Stall. */
#ifndef QB_EFI_CLOCK_H
#define QB_EFI_CLOCK_H

#include <stdint.h>

uint64_t qb_efi_ticks(void);
/* Ticks per second, measured over a Stall of `calibration_us`. */
uint64_t qb_efi_ticks_per_second(uint32_t calibration_us);
/* Ticks as microseconds (at least 1, so that rates can divide by it). */
uint64_t qb_efi_ticks_to_us(uint64_t ticks, uint64_t hz);

#endif
