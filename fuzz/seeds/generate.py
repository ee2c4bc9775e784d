#!/usr/bin/env python3
"""Writes the committed fuzz seeds from realistic SMTP transcripts.

Run from anywhere: python3 fuzz/seeds/generate.py. Each target's seed starts
with the control bytes its fuzz target reads (see the target's doc comment),
then the payload. Re-running rewrites the same files.
"""
import base64
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

# Chunk patterns (see fuzz_targets/common/mod.rs): 0x00 is 1 octet, 0x0f is
# 16, 0xff is 4096 (one packet).
BYTE_BY_BYTE = bytes([0x00, 0x00, 0x00, 0x00])
MIXED = bytes([0x03, 0x00, 0xC1, 0x07])
ONE_PACKET = bytes([0xFF, 0xFF, 0xFF, 0xFF])

SMUGGLING = [
    b"\n.\n", b"\n.\r\n", b"\r.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n",
    b"\n.\r", b"\r\n\x00.\r\n", b"\r\n.\x00\r\n",
]

PLAIN_GOOD = base64.b64encode(b"\0alice@example.com\0secret")
PLAIN_WRONG = base64.b64encode(b"\0alice@example.com\0wrong")
LOGIN_USER = base64.b64encode(b"alice@example.com")
LOGIN_PASSWORD = base64.b64encode(b"secret")

MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
           b"Subject: Lunch\r\n\r\nSee you at noon.\r\n..a line with a leading dot\r\n")


def crlf(*lines):
    return b"".join(line + b"\r\n" for line in lines)


# Session transcripts: (name, role byte, chunk pattern, client bytes).
# Role byte: 0 port 25, 1 port 587, 2 port 465; +0x10 sender check on.
OUTLOOK = crlf(
    b"EHLO DESKTOP-7Q2K3LM", b"STARTTLS", b"EHLO DESKTOP-7Q2K3LM", b"AUTH LOGIN",
    LOGIN_USER, LOGIN_PASSWORD, b"MAIL FROM: <alice@example.com> SIZE=120",
    b"RCPT TO: <bob@example.com>", b"DATA") + MESSAGE + crlf(b".", b"QUIT")
THUNDERBIRD = crlf(
    b"EHLO [127.0.0.1]", b"AUTH PLAIN " + PLAIN_GOOD,
    b"MAIL FROM:<alice@example.com> BODY=8BITMIME SIZE=120",
    b"RCPT TO:<bob@example.com>", b"RCPT TO:<carol@elsewhere.example>", b"DATA",
) + MESSAGE + crlf(b".", b"QUIT")
PIPELINED_MX = crlf(
    b"EHLO mail.sender.example", b"MAIL FROM:<news@sender.example> BODY=8BITMIME",
    b"RCPT TO:<alice@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.com",
    b"RCPT TO:<nobody@example.com>", b"RCPT TO:<Postmaster>", b"DATA",
) + MESSAGE + crlf(b".", b"MAIL FROM:<>", b"RCPT TO:<bob@example.com>", b"DATA",
                   b"Subject: bounce", b"", b"x", b".", b"QUIT")
BDAT = crlf(b"EHLO mail.sender.example", b"MAIL FROM:<a@sender.example> BODY=BINARYMIME",
            b"RCPT TO:<bob@example.com>", b"BDAT 12") + b"Subject: t\r\n" + \
    b"BDAT 9 LAST\r\n\r\nbody\r\n\x00" + \
    crlf(b"MAIL FROM:<b@sender.example>", b"RCPT TO:<alice@example.com>", b"BDAT 3 LAST") + \
    b"abc" + crlf(b"QUIT")
SUBMISSION_LOGIN_WRONG = crlf(
    b"EHLO DESKTOP-7Q2K3LM", b"AUTH LOGIN", LOGIN_USER, base64.b64encode(b"wrong"),
    b"AUTH PLAIN", PLAIN_WRONG, b"AUTH PLAIN", b"*", b"AUTH PLAIN " + PLAIN_GOOD,
    b"MAIL FROM:<mallory@example.com>", b"MAIL FROM:<sales@example.com> SMTPUTF8",
    b"RCPT TO:<j\xc3\xb6rg@example.com>", b"RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>",
    b"DATA", b"Subject: utf8", b"", b"caf\xc3\xa9", b".", b"QUIT")
RELAY_TRICKS = crlf(b"EHLO probe.example", b"MAIL FROM:<spam@probe.example>",
                    b"RCPT TO:<victim%elsewhere.example@example.com>",
                    b"RCPT TO:<victim!elsewhere.example@example.com>",
                    b"RCPT TO:<\"victim@elsewhere.example\"@example.com>",
                    b"RCPT TO:<@example.com:victim@elsewhere.example>",
                    b"RCPT TO:<@example.com,@relay.example:victim@elsewhere.example>",
                    b"RCPT TO:<victim@elsewhere.example>", b"RCPT TO:<bob@[192.0.2.1]>",
                    b"RCPT TO:<bob@example.com.>", b"RCPT TO:<BOB@EXAMPLE.COM>",
                    b"DATA", b"x", b".", b"QUIT")
ERRORS = crlf(b"MAIL FROM:<a@b>", b"HELO", b"EHLO", b"XYZZY", b"EHLO x", b"RCPT TO:<a@b>",
              b"DATA", b"BDAT 5", b"AUTH PLAIN", b"MAIL FROM:<a@b> FOO=bar",
              b"MAIL FROM:<a@b> REQUIRETLS", b"VRFY bob", b"EXPN list", b"HELP", b"NOOP",
              b"RSET", b"\xff\xfe", b"A" * 600, b"QUIT")

SESSIONS = [
    ("outlook_587_starttls_login", 0x11, BYTE_BY_BYTE, OUTLOOK),
    ("outlook_465_login", 0x12, MIXED, crlf(b"EHLO DESKTOP-7Q2K3LM", b"AUTH LOGIN", LOGIN_USER,
                                          LOGIN_PASSWORD, b"MAIL FROM: <alice@example.com>",
                                          b"RCPT TO: <bob@example.com>", b"DATA")
     + MESSAGE + crlf(b".", b"QUIT")),
    ("thunderbird_465_plain_pipelined", 0x12, ONE_PACKET, THUNDERBIRD),
    ("thunderbird_465_plain_bytes", 0x12, MIXED, THUNDERBIRD),
    ("pipelined_mx_25", 0x00, ONE_PACKET, PIPELINED_MX),
    ("pipelined_mx_25_chunked", 0x00, MIXED, PIPELINED_MX),
    ("bdat_25", 0x00, MIXED, BDAT),
    ("bdat_465_auth", 0x12, ONE_PACKET, crlf(b"EHLO x", b"AUTH PLAIN " + PLAIN_GOOD) + BDAT),
    ("auth_failures_utf8_465", 0x12, MIXED, SUBMISSION_LOGIN_WRONG),
    ("relay_tricks_25", 0x00, MIXED, RELAY_TRICKS),
    ("relay_tricks_465_auth", 0x12, ONE_PACKET,
     crlf(b"EHLO x", b"AUTH PLAIN " + PLAIN_GOOD) + RELAY_TRICKS),
    ("errors_25", 0x40, MIXED, ERRORS),
    ("starttls_injection_25", 0x00, ONE_PACKET,
     crlf(b"EHLO x", b"STARTTLS", b"RSET", b"MAIL FROM:<evil@x.example>")),
    ("starttls_injection_587", 0x01, ONE_PACKET,
     crlf(b"EHLO x", b"STARTTLS", b"AUTH PLAIN " + PLAIN_GOOD)),
    ("starttls_then_auth_587", 0x01, BYTE_BY_BYTE,
     crlf(b"EHLO x", b"STARTTLS", b"EHLO x", b"AUTH PLAIN", PLAIN_GOOD,
          b"MAIL FROM:<alice@example.com>", b"RCPT TO:<carol@elsewhere.example>",
          b"BDAT 4 LAST") + b"hi\r\n" + crlf(b"QUIT")),
    ("auth_over_plaintext_587", 0x01, MIXED,
     crlf(b"EHLO x", b"AUTH PLAIN " + PLAIN_GOOD, b"MAIL FROM:<alice@example.com>", b"QUIT")),
]
for i, seq in enumerate(SMUGGLING):
    stream = crlf(b"EHLO x", b"MAIL FROM:<a@sender.example>", b"RCPT TO:<bob@example.com>",
                  b"DATA") + b"Subject: a\r\n\r\nbody" + seq + \
        crlf(b"MAIL FROM:<admin@example.com>", b"RCPT TO:<alice@example.com>", b"DATA",
             b"smuggled") + b"\r\n.\r\n" + crlf(b"QUIT")
    SESSIONS.append((f"smuggling_{i:02}_25", 0x00, MIXED, stream))


def write(target, name, data):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    for target in ["line_splitter", "command_parser", "dot_unstuffer", "address_parser",
                   "sasl_decode", "session"]:
        shutil.rmtree(os.path.join(HERE, target), ignore_errors=True)

    lines = []
    for name, role, pattern, stream in SESSIONS:
        write("session", name, bytes([role]) + pattern + stream)
        # The same conversation as words of the command alphabet, for
        # command_parser, and whole, for line_splitter.
        lines.extend(stream.split(b"\r\n"))
        write("line_splitter", name, bytes([6]) + MIXED + stream)
    write("line_splitter", "tiny_limit", bytes([3]) + BYTE_BY_BYTE + crlf(b"ab", b"abc", b"abcd") + b"\n\r\n")

    seen = set()
    for line in lines:
        if line and line not in seen and len(line) < 600:
            seen.add(line)
            write("command_parser", f"line_{len(seen):03}", b"\x00" + line)
    for i, extra in enumerate([b"MAIL FROM:<a@b> SIZE=18446744073709551616",
                               b"MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=a+2Bb AUTH=<>",
                               b"RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS", b"BDAT 00 LAST",
                               b"mail from:<\"a b\"@[IPv6:::1]>", b"AUTH LOGIN =",
                               b"EHLO \xff", b"MAIL FROM:<a@b>\tSIZE=1"]):
        write("command_parser", f"extra_{i:02}", b"\x00" + extra)

    for i, seq in enumerate(SMUGGLING):
        write("dot_unstuffer", f"smuggling_{i:02}", bytes([0x1F]) + MIXED
              + b"Subject: a\r\n\r\nbody" + seq + b"MAIL FROM:<x>\r\n\r\n.\r\n")
    write("dot_unstuffer", "message", bytes([0x1F]) + MIXED + MESSAGE + b".\r\nQUIT\r\n")
    write("dot_unstuffer", "empty", bytes([0x1F]) + MIXED + b".\r\n")
    write("dot_unstuffer", "too_big_and_bare", bytes([0x02]) + BYTE_BY_BYTE + b"abc\ndef\r\n.\r\n")
    write("dot_unstuffer", "long_line", bytes([0x07]) + ONE_PACKET + b"0123456789\r\n.\r\n")

    addresses = [b"<alice@example.com>", b"<>", b"<Postmaster>", b"<postmaster@example.com>",
                 b"<\"john doe\"@example.com>", b"<\"a\\\"b\"@example.com>",
                 b"<victim%elsewhere.example@example.com>", b"<victim!elsewhere.example@example.com>",
                 b"<\"victim@elsewhere.example\"@example.com>",
                 b"<@example.com,@relay.example:victim@elsewhere.example>",
                 b"<bob@[192.0.2.1]>", b"<bob@[IPv6:2001:db8::1]>", b"<bob@[IPv6:::ffff:192.0.2.1]>",
                 b"<j\xc3\xb6rg@example.com> SMTPUTF8",
                 b"<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>",
                 b"<bob@example.com.>", b"<.bob@example.com>", b"<bob@-example.com>",
                 b"<" + b"a" * 64 + b"@example.com>", b"<a@" + b"b" * 63 + b".com> SIZE=1",
                 b"alice@example.com"]
    for i, address in enumerate(addresses):
        write("address_parser", f"address_{i:02}", b"\x00" + address)

    for i, line in enumerate([PLAIN_GOOD, PLAIN_WRONG, LOGIN_USER, LOGIN_PASSWORD, b"=", b"*",
                              b"  " + PLAIN_GOOD, PLAIN_GOOD.rstrip(b"="), b"VXNlcm5hbWU6",
                              b"\0alice@example.com\0secret", b"alice@example.com\0alice@example.com\0secret"]):
        write("sasl_decode", f"response_{i:02}", line)


main()
