#!/usr/bin/env python3
# A select chat room server in the style of the tutorial's selectserver.py, for Python 3.
# The tutorial names selectserver.py but does not print its code; this follows the tutorial's
# pattern (one select over the listener and every client, each recv broadcast to the others,
# "exit" on the client side quits) with the tutorial's faults kept on purpose, as the bug zoo's
# `tutorial_*` entries describe them (src/zoo/mod.rs):
#   - no framing: each recv(1024) chunk is broadcast behind its own "say:" header;
#   - sendall() on a non-blocking socket: a full recipient raises, mid-message;
#   - a failed recv is swallowed, and the previous data is broadcast again;
#   - a recipient that fails during a broadcast is removed from the dict being iterated.
# The notices follow the protocol selectlab checks: `<date> <time> ('<ip>', <port>) ...`.
# Usage: python3 selectserver.py HOST PORT   (port 0: any; the port is printed)
import select
import socket
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(10)
server.setblocking(False)
print(server.getsockname()[1], flush=True)

inputs = [server]
names = {}  # client socket -> its address


def notice(addr, what):
    return ("%s %s " % (time.strftime("%Y-%m-%d %H:%M:%S"), addr)).encode() + what


def broadcast(sender, message):
    for sock in names:
        if sock is not sender:
            try:
                sock.sendall(message)
            except socket.error:
                sock.close()
                del names[sock]
                inputs.remove(sock)


data = b""
while True:
    readable, _, broken = select.select(inputs, [], inputs)
    for s in readable:
        if s is server:
            conn, addr = server.accept()
            conn.setblocking(False)
            inputs.append(conn)
            names[conn] = addr
            broadcast(conn, notice(addr, b"entered room\n"))
        elif s in names:
            try:
                data = s.recv(1024)
                if data:
                    broadcast(s, notice(names[s], b"say: " + data))
                else:
                    addr = names.pop(s)
                    inputs.remove(s)
                    s.close()
                    broadcast(s, notice(addr, b"left room\n"))
            except socket.error:
                broadcast(s, notice(names[s], b"say: " + data))
                continue
    for s in broken:
        if s in names:
            inputs.remove(s)
            s.close()
            broadcast(s, notice(names.pop(s), b"left room\n"))
