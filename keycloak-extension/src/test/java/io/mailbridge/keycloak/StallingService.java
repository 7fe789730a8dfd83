package io.mailbridge.keycloak;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP peer on 127.0.0.1 that reads each request in full, sends the head of an answer and then
 * never finishes its body, as a service or proxy that stalls mid-answer would. Counts the
 * connections the client gave up on, so a test can see that none is left open.
 */
final class StallingService implements AutoCloseable {

    private final ServerSocket server;
    private final byte[] start;
    /** Sent again and again after {@link #start}, or null to send nothing more. */
    private final byte[] trickle;
    private final List<DroppingService.Request> requests = new CopyOnWriteArrayList<>();
    private final List<Socket> connections = new CopyOnWriteArrayList<>();
    private final AtomicInteger released = new AtomicInteger();

    private StallingService(String start, String trickle) throws IOException {
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.start = start.getBytes(StandardCharsets.ISO_8859_1);
        this.trickle = trickle == null ? null : trickle.getBytes(StandardCharsets.ISO_8859_1);
        Thread acceptor = new Thread(this::acceptAll, "stalling-service");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** Announces a 100-byte body, sends its first byte and then nothing. */
    static StallingService afterTheFirstByte() throws IOException {
        return new StallingService("HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                + "Content-Length: 100\r\n\r\n{", null);
    }

    /** A chunked body that never ends: a one-byte chunk every 100 ms, forever. */
    static StallingService chunkedForever() throws IOException {
        return new StallingService("HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n", "1\r\n \r\n");
    }

    URI url() {
        return URI.create("http://127.0.0.1:" + server.getLocalPort());
    }

    List<DroppingService.Request> requests() {
        return requests;
    }

    /** How many connections the client has closed so far. */
    int released() {
        return released.get();
    }

    private void acceptAll() {
        while (!server.isClosed()) {
            try {
                Socket connection = server.accept();
                connections.add(connection);
                Thread stall = new Thread(() -> stall(connection), "stalling-connection");
                stall.setDaemon(true);
                stall.start();
            } catch (IOException e) {
                // Closed by close().
            }
        }
    }

    private void stall(Socket connection) {
        try {
            InputStream in = connection.getInputStream();
            requests.add(DroppingService.read(in));
            OutputStream out = connection.getOutputStream();
            out.write(start);
            out.flush();
            if (trickle == null) {
                // Nothing more to send: wait for the client to close its end.
                while (in.read() >= 0) {
                    // An HTTP/1.1 client sends nothing more on this connection.
                }
            } else {
                while (true) {
                    Thread.sleep(100);
                    out.write(trickle);
                    out.flush();
                }
            }
            released.incrementAndGet();
        } catch (IOException e) {
            // The client reset or closed the connection (or close() did).
            if (!server.isClosed()) {
                released.incrementAndGet();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() throws IOException {
        server.close();
        for (Socket connection : connections) {
            connection.close();
        }
    }
}
