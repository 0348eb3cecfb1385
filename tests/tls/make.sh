#!/usr/bin/env bash
# Remakes the test certificates: a CA, and a certificate it signed for
# 127.0.0.1 and localhost, each valid for 100 years. For tests only: the
# keys are public, being here.
set -euo pipefail
cd "$(dirname "$0")"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$scratch/ca.key" -out ca.pem -days 36500 \
	-subj "/CN=actorflow test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout server.key -out "$scratch/server.csr" -subj "/CN=127.0.0.1"
cat >"$scratch/ext.cnf" <<'EXT'
subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
EXT
openssl x509 -req -in "$scratch/server.csr" -CA ca.pem \
	-CAkey "$scratch/ca.key" -CAcreateserial \
	-CAserial "$scratch/ca.srl" -out server.pem -days 36500 \
	-extfile "$scratch/ext.cnf"
