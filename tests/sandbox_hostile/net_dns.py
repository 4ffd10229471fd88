import socket
print(socket.gethostbyname("example.com"))
