#!/usr/bin/env python3
# A select-based chat client in the style of the tutorial's selectclient.py, for Python 3.
# The tutorial names selectclient.py but does not print its code; this follows the tutorial's
# pattern (select over standard input and the socket, "exit" quits) and nothing more.
# Usage: python3 selectclient.py HOST PORT
import select
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
inputs = [sys.stdin, s]
running = True
while running:
    readable, _, _ = select.select(inputs, [], [])
    for r in readable:
        if r is s:
            data = s.recv(1024)
            if not data:
                print("server closed")
                running = False
                break
            sys.stdout.write(data.decode("utf-8", "replace"))
            sys.stdout.flush()
        else:
            line = sys.stdin.readline()
            if not line or line.strip().lower() == "exit":
                running = False
                break
            s.sendall(line.encode())
s.close()
print("ByeBye~~")
