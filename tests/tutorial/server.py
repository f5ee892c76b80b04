#!/usr/bin/env python3
# -*- coding:utf8 -*-
"""
server.py

A port to Python 3 of the tutorial's TCP server (section 二.3), kept as close to the
original as Python 3 allows, so that selectlab can be tested against the tutorial's own program.
Changes from the tutorial, and only these:
  - host and port come from argv (the tutorial hard-codes ('10.1.32.80', 33333));
  - it serves the number of connections given as argv[3] and then exits (the tutorial loops for
    ever), so a test can wait for it;
  - Python 3 spellings: print() and bytes for sendall (the received bytes are decoded for the
    log line, as the tutorial's Python 2 str would have printed them).
The tutorial's bugs are kept on purpose: a peer that says nothing still gets the reply.

usage: python3 server.py HOST PORT COUNT
"""

import socket
import sys

host = (sys.argv[1], int(sys.argv[2]))
count = int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # 网络通信, TCP流
s.bind(host)
s.listen(5)  # listen 5 client
print("i'm waiting for connection...")

for _ in range(count):
    conn, addr = s.accept()   # connection  and ip address
    print('connected by', addr)
    while True:
        data = conn.recv(1024)
        print("receive from %s:%s" % (addr, data.decode('utf8', 'replace')))
        conn.sendall(b"server receive your messages, good bye.")
        conn.close()
        break
s.close()
