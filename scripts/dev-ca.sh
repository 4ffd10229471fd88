#!/usr/bin/env bash
# A development CA, a certificate per service and a bearer token, for mutual TLS
# between the services (the `security` config section; `grpo run --secure` makes them
# itself). Not for production: the CA key sits next to the certificates.
#
#   scripts/dev-ca.sh OUTDIR [NAMESPACE]
#
# Writes OUTDIR/ca.pem (and ca.key), OUTDIR/<name>.pem and <name>.key for coordinator,
# reward, learner, actor and client (command-line tools such as `grpo status`), and
# OUTDIR/token. Each certificate is valid as a server and a client and names localhost,
# 127.0.0.1, ::1, the service name and its Kubernetes DNS names in NAMESPACE (default
# grpo), pods of a headless Service included. Existing files are kept (rerun to fill in).
set -euo pipefail
OUT="${1:?usage: dev-ca.sh OUTDIR [NAMESPACE]}"
NS="${2:-grpo}"
command -v openssl >/dev/null || { echo "dev-ca.sh: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$OUT"
umask 077
cd "$OUT"
if [[ ! -f ca.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 365 \
    -subj "/CN=grpo development CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
for name in coordinator reward learner actor client; do
  [[ -f "$name.pem" && -f "$name.key" ]] && continue
  san="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:$name,DNS:$name.$NS,DNS:$name.$NS.svc,DNS:$name.$NS.svc.cluster.local"
  san="$san,DNS:*.$name.$NS.svc.cluster.local,DNS:*.$name.$NS.svc"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" \
    -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.pem" -days 365 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' "$san") \
    2>/dev/null
  rm -f "$name.csr"
done
[[ -f token ]] || openssl rand -hex 32 > token
chmod 600 ./*.key token
echo "dev-ca.sh: CA, certificates for coordinator reward learner actor client, and a token in $OUT"
