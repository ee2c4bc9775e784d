#!/usr/bin/env python3
"""Writes the committed fuzz seeds from realistic SMTP transcripts.

Run from anywhere: python3 fuzz/seeds/generate.py. Each target's seed starts
with the control bytes its fuzz target reads (see the target's doc comment),
then the payload. Re-running rewrites the same files.
"""
import base64
import hashlib
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
SESSIONS.append(("unbracketed_long_line_25", 0x00, MIXED,
                 crlf(b"EHLO x", b"MAIL FROM: a@sender.example SIZE=3000",
                      b"RCPT TO: bob@example.com NOTIFY=NEVER", b"DATA")
                 + b"Subject: a\r\n\r\n" + b"x" * 2000 + b"\r\n.\r\n" + crlf(b"QUIT")))


def write(target, name, data):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    for target in ["line_splitter", "command_parser", "dot_unstuffer", "address_parser",
                   "sasl_decode", "session", "client", "dsn", "dns_response", "envelope_file",
                   "dkim", "proxy_header"]:
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
    write("dot_unstuffer", "line_over_1000", bytes([0x07]) + MIXED + b"y" * 2000 + b"\r\n.\r\n")
    write("dot_unstuffer", "nul", bytes([0x07]) + BYTE_BY_BYTE + b"a\x00b\r\n.\r\n")

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
                 b"alice@example.com", b"alice@example.com SIZE=1",
                 b"@example.com:victim%elsewhere.example@example.com", b"postmaster NOTIFY=NEVER"]
    for i, address in enumerate(addresses):
        write("address_parser", f"address_{i:02}", b"\x00" + address)

    for i, line in enumerate([PLAIN_GOOD, PLAIN_WRONG, LOGIN_USER, LOGIN_PASSWORD, b"=", b"*",
                              b"  " + PLAIN_GOOD, PLAIN_GOOD.rstrip(b"="), b"VXNlcm5hbWU6",
                              b"\0alice@example.com\0secret", b"alice@example.com\0alice@example.com\0secret"]):
        write("sasl_decode", f"response_{i:02}", line)


    # client: params byte, mode byte (even: raw replies), chunk pattern, the
    # server's replies. Params: bits 0-1 TLS policy (never, opportunistic,
    # required, required and already on), 0x04 credentials, 0x08 8-bit body,
    # 0x10 SMTPUTF8, 0x20 DSN params, 0x40 BODY=8BITMIME, 0x80 three rcpts.
    greet = crlf(b"220 mx.example.com ESMTP Postfix")
    ehlo_full = crlf(b"250-mx.example.com", b"250-PIPELINING", b"250-SIZE 10240000",
                     b"250-STARTTLS", b"250-AUTH PLAIN LOGIN", b"250-ENHANCEDSTATUSCODES",
                     b"250-8BITMIME", b"250-DSN", b"250-SMTPUTF8", b"250 CHUNKING")
    ehlo_tls = crlf(b"250-mx.example.com", b"250-PIPELINING", b"250-SIZE 10240000",
                    b"250-AUTH PLAIN LOGIN", b"250-8BITMIME", b"250-DSN", b"250 SMTPUTF8")
    ehlo_plain = crlf(b"250-mx.example.com", b"250 SIZE 1000000")
    ok_mail, ok_rcpt = crlf(b"250 2.1.0 Ok"), crlf(b"250 2.1.5 Ok")
    go, queued = crlf(b"354 End data with <CR><LF>.<CR><LF>"), crlf(b"250 2.0.0 Ok: queued as 4711")
    client_seeds = [
        ("plain_1rcpt", 0x00, greet + ehlo_plain + ok_mail + ok_rcpt + go + queued),
        ("plain_3rcpt_one_refused", 0x80, greet + ehlo_plain + ok_mail + ok_rcpt
         + crlf(b"550 5.1.1 No such user") + ok_rcpt + go + queued),
        ("pipelined_3rcpt", 0x80, greet + ehlo_tls + ok_mail + ok_rcpt + ok_rcpt
         + crlf(b"452 4.5.3 Too many recipients") + go + queued),
        ("pipelined_mail_refused_354", 0x80, greet + ehlo_tls + crlf(b"553 5.7.1 Sender rejected")
         + crlf(b"503 5.5.1 No MAIL", b"503 5.5.1 No MAIL", b"503 5.5.1 No MAIL") + go
         + crlf(b"554 5.5.1 No valid recipients")),
        ("starttls_auth_plain", 0x06, greet + ehlo_full + crlf(b"220 2.0.0 Ready to start TLS")
         + ehlo_tls + crlf(b"235 2.7.0 Authentication successful") + ok_mail + ok_rcpt + go + queued),
        ("starttls_injection", 0x06, greet + ehlo_full + crlf(b"220 2.0.0 Ready to start TLS")
         + crlf(b"250-evil", b"250 AUTH PLAIN") + ehlo_tls
         + crlf(b"235 2.7.0 ok") + ok_mail + ok_rcpt + go + queued),
        ("tls_required_not_offered", 0x06, greet + ehlo_plain),
        ("auth_login", 0x07, greet + crlf(b"250-mx", b"250 AUTH LOGIN") + crlf(b"334 UGFzc3dvcmQ6")
         + crlf(b"235 2.7.0 ok") + ok_mail + ok_rcpt + go + queued),
        ("auth_plain_empty_challenge_refused", 0x07, greet + crlf(b"250-mx", b"250 AUTH PLAIN")
         + crlf(b"334 ") + crlf(b"535 5.7.8 Authentication credentials invalid")),
        ("eightbit_smtputf8_dsn", 0xF9, greet + ehlo_tls + ok_mail + ok_rcpt + ok_rcpt + ok_rcpt + go + queued),
        ("eightbit_no_8bitmime", 0x08, greet + ehlo_plain),
        ("ehlo_refused_helo", 0x00, greet + crlf(b"502 5.5.1 EHLO not implemented")
         + crlf(b"250 mx") + ok_mail + ok_rcpt + go + queued),
        ("greeting_554", 0x00, crlf(b"554 5.7.1 No service")),
        ("multiline_greeting_and_4xx", 0x80, crlf(b"220-mx.example.com", b"220-welcome", b"220 ESMTP")
         + ehlo_plain + ok_mail + crlf(b"450-4.2.1 busy", b"450 4.2.1 try later")
         + crlf(b"451 4.3.0 later") + ok_rcpt + go + crlf(b"451 4.3.0 Error in processing")),
        ("data_refused", 0x00, greet + ehlo_plain + ok_mail + ok_rcpt + crlf(b"554 5.5.1 No valid recipients")),
        ("final_552", 0x80, greet + ehlo_tls + ok_mail + ok_rcpt + ok_rcpt + ok_rcpt + go
         + crlf(b"552 5.3.4 Message too big")),
        ("421_mid_session", 0x00, greet + ehlo_plain + crlf(b"421 4.7.0 Closing connection")),
        ("overlong_line", 0x00, greet + b"250-" + b"x" * 1100 + b"\r\n"),
        ("code_changes", 0x00, greet + crlf(b"250-mx", b"251 oops")),
        ("bare_lf_replies", 0x00, b"220 mx\n250-mx\n250 8BITMIME\n250 ok\n250 ok\n354 go\n250 ok\n"),
    ]
    for name, params, stream in client_seeds:
        write("client", name, bytes([params, 0x00]) + MIXED + stream)
        write("client", name + "_bytes", bytes([params, 0x00]) + BYTE_BY_BYTE + stream)
    write("client", "tokens", bytes([0x80, 0x01]) + ONE_PACKET + bytes(range(0, 60)))

    # dsn: flags (bit 7 RET=FULL, 0x08 RET=HDRS, 0x40 ORCPT, 0x04 ENVID,
    # bits 4-5 recipients - 1, low bits actions), 8 seed bytes, fields split
    # by 0xFF: original, diagnostic, address, envid, orcpt, remote MTA,
    # reporting MTA, sender, date.
    date = b"Tue, 05 Mar 2024 14:03:09 +0000"
    def dsn(flags, original, diag, addr=b"bob@example.com", envid=b"QQ314159",
            orcpt=b"rfc822;bob+40example.com", remote=b"mx.example.com",
            host=b"out.example.org", sender=b"alice@example.org"):
        return bytes([flags]) + b"\x01\x02\x03\x04\x05\x06\x07\x08" + b"\xff".join(
            [original, diag, addr, envid, orcpt, remote, host, sender, date])
    long_header = b"X-Long: " + b"a" * 2000 + b"\r\n"
    for i, (flags, original, diag) in enumerate([
            (0x44, MESSAGE, b"550 5.1.1 <bob@example.com>: Recipient address rejected"),
            (0xC4, MESSAGE, b"552-5.2.2 mailbox full\r\n552 5.2.2 try later"),
            (0x31, MESSAGE, b"451 4.4.1 connect to mx.example.com[192.0.2.1]:25: Connection refused"),
            (0x82, long_header + b"\n\nbody\rline\n.\n", b"250 2.0.0 Ok"),
            (0x08, b"Subject: =?utf-8?q?caf=C3=A9?=\r\nX-Evil: a\r\n\r\n--=_outpost_0000\r\n",
             b"550 \x00\x1b[31m evil\r\nInjected: yes"),
            (0x00, b"no headers at all", b"\xe7\x94\xa8\xe6\x88\xb7 " * 400),
            (0xF0, b"", b""),
    ]):
        write("dsn", f"report_{i:02}", dsn(flags, original, diag))
    write("dsn", "utf8_addresses", dsn(0x44, MESSAGE, b"550 5.1.1 nope",
                                       addr=b"j\xc3\xb6rg@example.com", orcpt=b"utf-8;j\\x{F6}rg@example.com",
                                       sender=b"\xe7\x94\xa8\xe6\x88\xb7@example.com"))
    write("dsn", "hostile_fields", dsn(0x4C, MESSAGE, b"550 x", addr=b"a\r\nBcc: x@y",
                                       envid=b"a+0D+0ABcc:+20x", orcpt=b"rfc822;a+0D+0Ab",
                                       remote=b"mx\r\n.example", host=b"out\r\nevil", sender=b"<a>\r\n"))

    # dns_response: mode byte (type: % 3 MX, A, AAAA; 0x04 built; 0x08 asked
    # as "Example.COM."; high nibble: mutation count), then a raw packet or
    # a recipe (question byte, then (owner|kind, target) byte pairs).
    def name(n):
        return b"".join(bytes([len(l)]) + l for l in n.split(b".")) + b"\x00"
    def rr(owner, rtype, rdata):
        return owner + rtype.to_bytes(2, "big") + b"\x00\x01" + (300).to_bytes(4, "big") \
            + len(rdata).to_bytes(2, "big") + rdata
    def reply(qtype, answers, flags=b"\x81\x80", id_=0x4F2A, qname=b"example.com"):
        return id_.to_bytes(2, "big") + flags + b"\x00\x01" + len(answers).to_bytes(2, "big") \
            + b"\x00\x00\x00\x00" + name(qname) + qtype.to_bytes(2, "big") + b"\x00\x01" + b"".join(answers)
    q = b"\xc0\x0c"  # pointer to the question's name
    mx = reply(15, [rr(q, 15, b"\x00\x0a" + name(b"mx1.example.com")),
                    rr(q, 15, b"\x00\x14" + name(b"mx2.example.com"))])
    a = reply(1, [rr(q, 5, name(b"alias.example.com")),
                  rr(name(b"alias.example.com"), 1, bytes([192, 0, 2, 1]))])
    aaaa = reply(28, [rr(q, 28, bytes.fromhex("20010db8000000000000000000000001"))])
    for nm, mode, pkt in [("mx", 0, mx), ("a_cname", 1, a), ("aaaa", 2, aaaa),
                          ("mx_truncated", 0, reply(15, [], flags=b"\x83\x80")),
                          ("nxdomain", 0, reply(15, [], flags=b"\x81\x83")),
                          ("servfail", 1, reply(1, [], flags=b"\x81\x82")),
                          ("wrong_id", 0, reply(15, [], id_=1)),
                          ("other_question", 1, reply(1, [], qname=b"other.example")),
                          ("pointer_loop", 0, mx[:-2] + b"\xc0" + bytes([len(mx) - 2]))]:
        write("dns_response", "raw_" + nm, bytes([mode]) + pkt)
    for nm, mode, recipe in [("built_mx", 0x04, b"\x00\x20\x03\x20\x05\x02\x03"),
                             ("built_a_chain", 0x05, b"\x00\x00\x02\x02\x03\x33\x07\x31\x01"),
                             ("built_aaaa_case_mutated", 0x2E, b"\x00\x41\x02\x00\x01" + b"\x10\x00\x41"),
                             ("built_nxdomain", 0x0C, b"\x40"),
                             ("built_cname_loop", 0x04, b"\x00\x00\x02\x02\x00\x20\x03")]:
        write("dns_response", nm, bytes([mode]) + recipe)

    # envelope_file: mode byte (bit 0 sealed: the target appends the trailer;
    # bit 1 lines: the target writes the fields from LF-separated values; the
    # rest the trailer's length), 8 control bytes, the file.
    envelope = (b"version: 2\nid: 0J5Z3K1M2N3P4Q5R\n"
                b"arrival: 1795718460 Thu, 26 Nov 2026 18:41:00 +0000\n"
                b"sender: alice@example.org\nclient: 192.0.2.7\nhelo: evil%0D%0Ahelo 100%25\n"
                b"protocol: ESMTPSA\nauth-user: alice@example.org\ntls: TLSv1.3\nbody: 8BITMIME\n"
                b"smtputf8: yes\nret: HDRS\nenvid: QQ314159\n"
                b"message-sha256: " + hashlib.sha256(b"message").hexdigest().encode() + b"\n"
                b"attempts: 3\nnext-attempt: 1795719000\n")
    rcpts = (b"rcpt: bob@example.com notify=- orcpt=- state=pending attempts=0\n"
             b"rcpt: \"odd%20guy\"@example.net notify=SUCCESS,FAILURE orcpt=rfc822;odd+20guy@example.net "
             b"state=delivered attempts=0 report=due\n"
             b"rcpt: carol@example.com notify=NEVER orcpt=- state=failed attempts=0\n"
             b"reply: 550 5.1.1 No such user%0D%0Ahere\n"
             b"rcpt: dave@example.com notify=- orcpt=- state=deferred attempts=3\n"
             b"reply: 451 4.3.0 Try later\n")
    minimal = (b"version: 2\nid: A\narrival: 0\nsender:\nclient:\nhelo:\nprotocol: SMTP\nauth-user:\n"
               b"tls:\nbody:\nsmtputf8: no\nret:\nenvid:\nmessage-sha256: " + b"0" * 64 + b"\n"
               b"attempts: 0\nnext-attempt: 0\nrcpt: a@b notify=- orcpt=- state=pending attempts=0\n")
    # Version 3: typed failures and the next hop of a delivered recipient
    # (version 2 above is still read).
    envelope3 = envelope.replace(b"version: 2\n", b"version: 3\n")
    rcpts3 = (b"rcpt: bob@example.com notify=- orcpt=- state=pending attempts=0\n"
              b"rcpt: \"odd%20guy\"@example.net notify=SUCCESS,FAILURE orcpt=rfc822;odd+20guy@example.net "
              b"state=delivered attempts=0 report=due\n"
              b"remote-mta: mx.example.net\n"
              b"rcpt: carol@example.com notify=NEVER orcpt=- state=failed attempts=0\n"
              b"failure: remote mx.example.com 550 5.1.1 No such user%0D%0Ahere\n"
              b"rcpt: dave@example.com notify=- orcpt=- state=deferred attempts=3\n"
              b"failure: local 4.4.1 connect to mx.example.com[192.0.2.9]:25: refused\n"
              b"rcpt: erin@example.com notify=DELAY orcpt=- state=failed attempts=0 report=due\n"
              b"failure: expired 432000 remote mx.example.com 451 - Try later\n"
              b"rcpt: frank@example.com notify=- orcpt=- state=delivered attempts=0\n")
    minimal3 = minimal.replace(b"version: 2\n", b"version: 3\n")
    def sealed(text, length):
        body = text + b"end %d " % length
        return body + hashlib.sha256(body).hexdigest().encode() + b"\n"
    control = b"\x10\x00\x37\x01\x99\x00\xff\x01"
    for nm, text in [("full", envelope + rcpts), ("delay_warned", envelope + b"delay-warned: yes\n" + rcpts),
                     ("minimal", minimal), ("unknown_protocol", minimal.replace(b"SMTP", b"XSMTP9")),
                     ("v3_full", envelope3 + rcpts3), ("v3_minimal", minimal3)]:
        write("envelope_file", "sealed_" + nm, bytes([0x01 | (17 << 2)]) + control + text)
        write("envelope_file", "raw_" + nm, bytes([0x00]) + control + sealed(text, 1234))
    write("envelope_file", "raw_torn", bytes([0x00]) + control + sealed(envelope + rcpts, 1)[:-20])
    # Lines mode: every field its good value, two recipients (one deferred).
    write("envelope_file", "lines_defaults", bytes([0x02 | (17 << 2)]) + control
          + b"\n" * 16 + b"\x00\n\x00carol@example.com notify=- orcpt=- state=deferred attempts=2\n\x01")

    # dkim: settings (0x02 raw message; 0xF0 signs with RSA), chunk
    # pattern, the message.
    rfc8463 = (b"From: Joe SixPack <joe@football.example.com>\r\nTo: Suzie Q <suzie@shopping.example.net>\r\n"
               b"Subject: Is dinner ready?\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
               b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\r\n"
               b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n")
    folded = (b"Received: from a\r\n\tby b; Sat, 5 Dec 2026 10:00:00 +0000\r\nFROM : \"Smith, J\" (x)\r\n"
              b" <j@Example.ORG.>\r\nSubject:  two\t words \r\nsubject: again\r\n\r\n"
              b" lead\t and trail \t\r\n\r\n\r\nbare\rcr and\nlf\r\n \r\n\r\n")
    write("dkim", "rfc8463_whole", bytes([0x02]) + ONE_PACKET + rfc8463)
    write("dkim", "rfc8463_rsa_bytewise", bytes([0xF2]) + BYTE_BY_BYTE + rfc8463)
    write("dkim", "folded_mixed", bytes([0x02]) + MIXED + folded)
    write("dkim", "no_body", bytes([0x02]) + MIXED + b"From: a@b.example\r\nTo: c@d")
    write("dkim", "tokens", bytes([0x00]) + MIXED + bytes(range(0, 27)) + bytes([9, 9, 10, 23, 10]))

    # proxy_header: the connection's first bytes, as HAProxy sends them.
    v2 = b"\r\n\r\n\0\r\nQUIT\n"
    write("proxy_header", "v1_tcp4", b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 25\r\nEHLO x\r\n")
    write("proxy_header", "v1_tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 587\r\n")
    write("proxy_header", "v1_unknown", b"PROXY UNKNOWN\r\n")
    write("proxy_header", "v2_tcp4", v2 + bytes([0x21, 0x11, 0, 12, 192, 0, 2, 7, 198, 51, 100, 1, 0xc8, 0x22, 0, 25]))
    write("proxy_header", "v2_local", v2 + bytes([0x20, 0, 0, 0]))


main()
