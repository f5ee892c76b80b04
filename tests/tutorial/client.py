#!/usr/bin/env python3
# -*- coding:utf8 -*-
"""
client.py

A port to Python 3 of the tutorial's TCP client (section 二.3), kept as close to the
original as Python 3 allows, so that selectlab can be tested against the tutorial's own program.
Changes from the tutorial, and only these:
  - host and port come from argv (the tutorial hard-codes ('10.1.32.80', 33333));
  - Python 3 spellings: input() for raw_input(), print(), and bytes on the wire (UTF-8).
The tutorial's bugs are kept on purpose: it looks for "good bye" in a single recv(1024), and
prints an empty line for ever once the server has hung up (until sendall fails).

usage: python3 client.py HOST PORT   (messages on standard input, one per line)
"""

import socket
import sys

host = (sys.argv[1], int(sys.argv[2]))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # 网络通信, TCP流
s.connect(host)

while True:
    msg = input("Please input message: ")
    try:
        s.sendall(msg.encode('utf8'))
    except socket.error:
        print("i'm die, bye bye~")
        break
    data = s.recv(1024)
    print(data.decode('utf8', 'replace'))
    if "good bye" in data.decode('utf8', 'replace'):
        break
s.close()
