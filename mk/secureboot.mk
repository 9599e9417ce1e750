# Secure Boot: signing qcowboot.efi and the Secure Boot boot tests
# (tests/secureboot/).
