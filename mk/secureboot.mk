# Secure Boot: signing qcowboot.efi and the Secure Boot boot tests
# (tests/secureboot/).
#
#   make sign KEY=key.pem CERT=cert.pem [KEY_PASS_FILE=FILE] [SIGNED_DIR=DIR]
#       signs build/efi/qcowboot.efi and build/efi/qcowbootdrv.efi with sbsign
#       into SIGNED_DIR (default build/efi/signed/), under their own names so
#       the directory can go onto a stick as it is, and checks each signature
#       with sbverify (tools/sign-efi.sh). KEY_PASS_FILE holds the key's
#       passphrase; without it sbsign asks for it when the key is encrypted.
#   make test-secureboot
#       OVMF enforcing Secure Boot with Debian's snakeoil keys: a signed
#       qcowboot boots a signed guest, refuses an unsigned one and shows its
#       menu again; an unsigned qcowboot is not started at all.

SIGNED_DIR ?= build/efi/signed

sign: $(EFI_APP) $(EFI_DRV) | $(DEPS_STAMP)
	@if [ -z "$(KEY)" ] || [ -z "$(CERT)" ]; then \
	    echo "usage: make sign KEY=key.pem CERT=cert.pem [KEY_PASS_FILE=FILE] [SIGNED_DIR=DIR]" >&2; \
	    exit 2; fi
	@bash tools/sign-efi.sh --key "$(KEY)" --cert "$(CERT)" \
	    $(if $(KEY_PASS_FILE),--pass-file "$(KEY_PASS_FILE)") \
	    --out-dir "$(SIGNED_DIR)" $(EFI_APP) $(EFI_DRV)

test-secureboot: all
	bash tests/run-all.sh tests/secureboot/run.sh

.PHONY: sign test-secureboot
