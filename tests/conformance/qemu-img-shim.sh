#!/usr/bin/env bash
# A stand-in for build/host/qcowboot made of qemu-img, to check the test
# suites themselves: `QB=tests/conformance/qemu-img-shim.sh bash
# tests/conformance/run.sh` must pass everything, and tests/bad/run.sh run
# that way shows what qemu-img says about each damaged image.
cmd=$1; shift
json=; chain=; snap=
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --json) json=1;;
    --backing-chain) chain=--backing-chain;;
    -l) if [ $cmd = snapshot ]; then :; else snap=$2; shift; fi;;
    *) args+=("$1");;
  esac; shift
done
case $cmd in
  info) if [ -n "$json" ]; then qemu-img info --output=json $chain "${args[@]}" | python3 -c '
import json,sys
d=json.load(sys.stdin)
for o in (d if isinstance(d,list) else [d]): o.pop("actual-size",None)
print(json.dumps(d))'; exit ${PIPESTATUS[0]}; else exec qemu-img info $chain "${args[@]}"; fi;;
  map) exec qemu-img map ${json:+--output=json} "${args[@]}";;
  check) exec qemu-img check ${json:+--output=json} "${args[@]}";;
  convert) exec qemu-img convert ${snap:+-l "$snap"} -O raw "${args[@]}";;
  snapshot) exec qemu-img snapshot -l "${args[@]}";;
esac
