#!/usr/bin/env bash
# Remakes the test certificates: a CA, and a certificate it signed for
# 127.0.0.1 and localhost, valid from 2025 to 2125 (a machine whose clock
# is a little off still accepts them). For tests only: the keys are
# public, being here.
set -euo pipefail
cd "$(dirname "$0")"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
touch "$scratch/index.txt"
cat >"$scratch/ca.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $scratch/index.txt
new_certs_dir = $scratch
serial = $scratch/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
CNF
echo 01 >"$scratch/serial"
dates=(-startdate 20250101000000Z -enddate 21250101000000Z)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$scratch/ca.key" -out "$scratch/ca.csr" \
	-subj "/CN=actorflow test CA"
openssl ca -batch -notext -config "$scratch/ca.cnf" -selfsign \
	-keyfile "$scratch/ca.key" -in "$scratch/ca.csr" -out ca.pem \
	-extensions ca_ext "${dates[@]}"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout server.key -out "$scratch/server.csr" -subj "/CN=127.0.0.1"
openssl ca -batch -notext -config "$scratch/ca.cnf" -cert ca.pem \
	-keyfile "$scratch/ca.key" -in "$scratch/server.csr" -out server.pem \
	-extensions server_ext "${dates[@]}"
