# Boot tests: real Linux guests (a Debian kernel and a busybox initramfs on
# GPT and MBR disks, booted by a unified kernel image or by GRUB from ext4)
# built under build/guests/ by tests/boot/make-guests.sh, which rebuilds
# only when its inputs change.
#
#   make guests       builds the guests and their qcow2 variants
#   make test-boot    boots them from a stick through qcowboot.efi
#   make bench-boot   time to the guest's marker: raw disk vs via qcowboot

guests: $(DEPS_STAMP)
	bash tests/boot/make-guests.sh

test-boot: all guests
	bash tests/run-all.sh tests/boot/run.sh

bench-boot: all guests
	bash tests/boot/bench-boot.sh

.PHONY: guests test-boot bench-boot
