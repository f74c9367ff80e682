import base64, json, os, struct, hashlib
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519, padding
from cryptography.hazmat.primitives import hashes

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def ib(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return n.to_bytes(length, "big")
def write(target, data):
    if isinstance(data, str): data = data.encode()
    d = os.path.join(ROOT, target); os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    open(os.path.join(d, name), "wb").write(data)

NOW = 1760000000
ISS = "http://127.0.0.1:1/oauth2/default"
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
ec384 = ec.generate_private_key(ec.SECP384R1())
ed_key = ed25519.Ed25519PrivateKey.generate()

def sign_rs256(msg): return rsa_key.sign(msg, padding.PKCS1v15(), hashes.SHA256())

def jws(header, claims, raw=False):
    h = header if raw else json.dumps(header, separators=(",", ":"))
    c = claims if raw else json.dumps(claims, separators=(",", ":"))
    msg = b64u(h.encode()) + "." + b64u(c.encode())
    return msg + "." + b64u(sign_rs256(msg.encode()))

okta_claims = {"ver": 1, "jti": "AT.5Xj1ZT4v6qYv0sM0f3Hc9qJ8fQ2pQeX0a1b2c3d4e5f", "iss": ISS, "aud": "api://halo",
    "iat": NOW - 60, "exp": NOW + 3540, "cid": "0oa1b2c3d4e5f6g7h8i9", "uid": "00u1a2b3c4d5e6f7g8h9",
    "scp": ["halo.api"], "auth_time": NOW - 120, "sub": "analyst@example.com", "role": "Admin"}
okta_header = {"kid": "Q2hhbmdlTWUtUlNBLWtleS0x", "alg": "RS256"}

claims_variants = [
    okta_claims,
    {**okta_claims, "role": ["Admin", "User"]},
    {**okta_claims, "role": ["Admin", 7]},
    {k: v for k, v in okta_claims.items() if k != "role"},
    {**okta_claims, "aud": ["api://other", "api://halo"]},
    {**okta_claims, "aud": []},
    {**okta_claims, "aud": "api://other"},
    {**okta_claims, "iss": "https://evil.example/oauth2/default"},
    {**okta_claims, "iss": 5},
    {**okta_claims, "exp": NOW - 1000},
    {**okta_claims, "exp": "1760003540"},
    {**okta_claims, "exp": 1.7600035e9},
    {**okta_claims, "nbf": NOW + 3600},
    {**okta_claims, "iat": NOW + 3600},
    {**okta_claims, "iat": NOW - 200000},
    {**okta_claims, "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
    {**okta_claims, "cid": ["x"]},
    {**okta_claims, "sub": None},
    {k: v for k, v in okta_claims.items() if k != "exp"},
    {k: v for k, v in okta_claims.items() if k not in ("iat",)},
    {**okta_claims, "iss": "\u0000\"\\\u00e9\U0001F600" * 30},
    {**okta_claims, "aud": ["\"quoted\\" * 40]},
]
header_variants = [
    okta_header,
    {**okta_header, "typ": "at+jwt"},
    {**okta_header, "typ": "application/at+JWT"},
    {**okta_header, "typ": "application/okta-internal-at+jwt"},
    {**okta_header, "typ": "JWT"},
    {**okta_header, "typ": 1},
    {**okta_header, "alg": "HS256"},
    {**okta_header, "alg": "none"},
    {**okta_header, "alg": "ES256"},
    {**okta_header, "alg": "EdDSA"},
    {**okta_header, "alg": "PS512"},
    {**okta_header, "alg": ["RS256"]},
    {"alg": "RS256"},
    {**okta_header, "kid": ""},
    {**okta_header, "kid": "k" * 257},
    {**okta_header, "kid": 12},
    {**okta_header, "crit": ["exp"]},
    {**okta_header, "jku": "https://evil.example/jwks"},
    {**okta_header, "jwk": {"kty": "oct", "k": "AAAA"}},
    {**okta_header, "x5c": ["MIIB"]},
    {**okta_header, "b64": False},
    {**okta_header, "cty": "JWT"},
]
prefix = lambda mode, now=NOW: bytes([mode]) + struct.pack("<I", now)
for c in claims_variants:
    write("token_validation", prefix(0) + jws(okta_header, c).encode())
    write("token_validation", prefix(1) + json.dumps(c).encode())
for h in header_variants:
    write("token_validation", prefix(0) + jws(h, okta_claims).encode())
    write("token_validation", prefix(2) + json.dumps(h).encode())
raw_tokens = [
    jws('{"kid":"a","alg":"RS256","kid":"b"}', json.dumps(okta_claims), raw=True),
    jws(json.dumps(okta_header), '{"iss":"x","a":{"b":1,"b":2}}', raw=True),
    jws(json.dumps(okta_header), '{"exp":1e400}', raw=True),
    jws(json.dumps(okta_header), '{"exp":-0.0,"iat":18446744073709551615,"nbf":-9223372036854775808}', raw=True),
    jws(json.dumps(okta_header), '[1,2,3]', raw=True),
    jws(json.dumps(okta_header), '{"a":1} trailing', raw=True),
    jws(json.dumps(okta_header), '{"deep":' + '[' * 200 + ']' * 200 + '}', raw=True),
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.",
    "a.b.c.d.e",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0=.c2ln",
    "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    "e30.e30.e30",
    "",
]
for t in raw_tokens:
    write("token_validation", prefix(0) + t.encode())
for mode in (1, 2):
    write("token_validation", prefix(mode, 0) + b'{"a":1,"a":2}')
    write("token_validation", prefix(mode, 0xFFFFFFFF) + b'{"exp":4294967295,"iat":4294967000,"iss":"' + ISS.encode() + b'","aud":"api://halo","sub":"s"}')

# --- token_extraction
real = jws(okta_header, okta_claims)
for v in [
    "Bearer " + real, "bearer abc", "BEARER    abc  ", "Basic dXNlcjpwYXNz", "Bearer\tabc", "Bearer a\nBearer b",
    "Bearer ", "Bearer", "Bearer a b", "DPoP " + real, "Bearer abc==", "Bearer a=b", "Bearer  " + real + "   ",
    "Bearer abc\x7f", "Bearer abc\"def\\", "Negotiate YIIB", "", "\nBearer x", "Bearer x\n\nBasic y",
    "x=1&access_token=abc", "Access_Token=abc&x=1", "access%5Ftoken=x", "+access_token+=x", "a=1;access_token=2",
    "access_token", "ACCESS_TOKEN=&access_token=", "%61ccess_token=1", "access_token%3D1",
]:
    write("token_extraction", v)
write("token_extraction", b"Bearer \xff\xfe")
write("token_extraction", b"Bearer abc\xc3\xa9")

# --- jwks_ingestion
def rsa_jwk(key, kid, **extra):
    pub = key.public_key().public_numbers()
    return {"kty": "RSA", "alg": "RS256", "kid": kid, "use": "sig", "e": b64u(ib(pub.e)), "n": b64u(ib(pub.n)), **extra}
def ec_jwk(key, kid, crv, size, **extra):
    pub = key.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "kid": kid, "x": b64u(ib(pub.x, size)), "y": b64u(ib(pub.y, size)), **extra}
from cryptography.hazmat.primitives import serialization
ed_pub = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
okp = {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": b64u(ed_pub)}
rsa1 = rsa_jwk(rsa_key, "Q2hhbmdlTWUtUlNBLWtleS0x")
priv = rsa_key.private_numbers()
rsa_private = {**rsa1, "kid": "priv", "d": b64u(ib(priv.d)), "p": b64u(ib(priv.p)), "q": b64u(ib(priv.q))}
small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
docs = [
    {"keys": [rsa1]},
    {"keys": [rsa1, ec_jwk(ec_key, "ec256", "P-256", 32), ec_jwk(ec384, "ec384", "P-384", 48, alg="ES384"), okp]},
    {"keys": [rsa1, {**rsa1, "use": "enc", "alg": "RSA-OAEP"}]},
    {"keys": [rsa1, {**rsa1}]},
    {"keys": [rsa1, {**rsa1, "alg": "PS256"}, okp, {**okp}]},
    {"keys": [rsa_private]},
    {"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"}]},
    {"keys": [{**rsa1, "kid": ""}, {**rsa1, "kid": "k" * 257}, {**rsa1, "kid": "k" * 256}, {**rsa1, "kid": 5}]},
    {"keys": [{k: v for k, v in rsa1.items() if k != "kid"}]},
    {"keys": [rsa_jwk(small, "small")]},
    {"keys": [{**rsa1, "kid": "even", "e": "AAE"}, {**rsa1, "kid": "e2", "e": "Ag"}, {**rsa1, "kid": "ebig", "e": "AQAB" * 4}]},
    {"keys": [{**rsa1, "kid": "lead0", "n": b64u(b"\x00" + ib(rsa_key.public_key().public_numbers().n))}]},
    {"keys": [{**rsa1, "kid": "padded", "n": rsa1["n"] + "=="}]},
    {"keys": [{**rsa1, "key_ops": ["encrypt"]}, {**rsa1, "kid": "ops", "key_ops": ["verify", "sign"]}]},
    {"keys": [{**rsa1, "alg": "ES256", "kid": "mismatch"}, {**rsa1, "alg": "HS256", "kid": "hs"}, {**rsa1, "alg": "none", "kid": "none"}]},
    {"keys": [ec_jwk(ec_key, "wrongcrv", "P-521", 32), ec_jwk(ec_key, "short", "P-256", 32, x="AAAA"), {**okp, "crv": "X25519", "kid": "x"}]},
    {"keys": [ec_jwk(ec384, "crvmix", "P-256", 48)]},
    {"keys": [{**okp, "x": "AAAA", "kid": "shorted"}, {**okp, "kid": "edpriv", "d": "AAAA"}]},
    {"keys": [1, "x", None, [], {"kty": 5, "kid": "k"}, {"kty": "RSA", "kid": "nomod"}]},
    {"keys": []}, {"keys": {}}, {"nokeys": []}, [],
    {"keys": [{**rsa1, "kid": "\u00e9\n\u001b[31m\"\\" * 20}, {**rsa1, "kty": "RSA\n\u001b[0m", "kid": "inject"}]},
]
for d in docs:
    write("jwks_ingestion", json.dumps(d))
write("jwks_ingestion", '{"keys":[{"kty":"RSA","kid":"a","kid":"b","n":"' + rsa1["n"] + '","e":"AQAB"}]}')
write("jwks_ingestion", "not json")

# --- path_policy
for p in ["/api/v1/license", "/API/V1/%6Cicense", "/api/v1/../v1/license", "/a%2fb", "/api/v1/license/", "/api//v1/license",
          "/api/v1/x/../license", "/api/v1/./license", "/api/v1/licen%C5%BFe", "/Api/V1/License-Usage/../License",
          "/API/v1/License-Usage/Active/", "/api/v1/license-usage/abc123", "/api/health", "/api/health/", "/api/v2/license",
          "/api/v1/policies/default/reset", "/api/v1/rebuild/file", "/api/Rebuild/base64", "/api/v3/cdr", "/api/analyse/x",
          "/api/filetypedetection/base64", "/api/composite/x", "/api/v1/cdr-async/x", "/api/v1/cdr-file-async/y",
          "/something/else", "/", "//", "/.", "/..", "/../etc", "/api/../../x", "/api/%2E%2E/%2e/license", "/api/%zz", "/api/%4",
          "/api/%00", "/api/%0a", "/api\\v1", "/api/v1%5Clicense", "api", "/api/v1/policies/a%2bb", "/api/v1/policies/caf%c3%a9",
          "/api/v1/license?access_token=x", "/api/v1/license#frag", "/api/v1/lic%65nse/", "/%41pi/v1/license", "*",
          "/api/v1/license-usage/*/x", "/api/v1/LICEN%C5%BFE", "/api/v1/licen\u017fe", "/api/v1/caf\u00e9", "/api/v1/%E2%84%AA",
          "/api/v1/license/%2e%2E", "/api/v1/license/.%2e/x", "/a/b/c/../../../api/v1/license"]:
    write("path_policy", p)
print("ok")
