# Boot tests: real Linux guests (a Debian kernel and a busybox initramfs on
# GPT and MBR disks, booted by a unified kernel image or by GRUB from ext4)
# built under build/guests/ by tests/boot/make-guests.sh, which rebuilds
# only when its inputs change.
#
#   make guests       builds the guests and their qcow2 variants
#   make test-boot    boots them from a stick through qcowboot.efi
#   make bench-boot   time to the guest's marker: raw disk vs via qcowboot
#   make bench-ramdisk  RAM-disk mode: the load rate in the firmware, and the
#                     time to the root file system's marker, raw disk vs
#                     qcowboot's RAM disk from qcow2

guests: $(DEPS_STAMP)
	bash tests/boot/make-guests.sh

test-boot: all guests
	bash tests/run-all.sh tests/boot/run.sh

bench-boot: all guests
	bash tests/boot/bench-boot.sh

bench-ramdisk: all guests
	bash tests/boot/bench-ramdisk.sh

.PHONY: guests test-boot bench-boot bench-ramdisk
