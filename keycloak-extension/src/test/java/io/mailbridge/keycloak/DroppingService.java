package io.mailbridge.keycloak;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP peer on 127.0.0.1 that reads each request in full and then resets the connection without
 * an HTTP answer, as a service that stored the email and crashed, or a proxy that gave up, would.
 */
final class DroppingService implements AutoCloseable {

    /** One request as read off the wire: its head (request line and headers) and body. */
    record Request(String head, String body) {
        String header(String name) {
            String prefix = name.toLowerCase(Locale.ROOT) + ":";
            return head.lines()
                    .filter(line -> line.toLowerCase(Locale.ROOT).startsWith(prefix))
                    .map(line -> line.substring(prefix.length()).trim())
                    .findFirst().orElse(null);
        }
    }

    private final ServerSocket server;
    private final boolean onlyOnce;
    private final List<Request> requests = new CopyOnWriteArrayList<>();
    private final Thread acceptor;

    private DroppingService(boolean onlyOnce) throws IOException {
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.onlyOnce = onlyOnce;
        this.acceptor = new Thread(this::acceptAll, "dropping-service");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** Drops every connection after its request. */
    static DroppingService afterEachRequest() throws IOException {
        return new DroppingService(false);
    }

    /** Drops the first connection after its request, then stops listening: the port refuses. */
    static DroppingService thenGone() throws IOException {
        return new DroppingService(true);
    }

    URI url() {
        return URI.create("http://127.0.0.1:" + server.getLocalPort());
    }

    List<Request> requests() {
        return requests;
    }

    private void acceptAll() {
        while (!server.isClosed()) {
            try (Socket connection = server.accept()) {
                requests.add(read(connection.getInputStream()));
                if (onlyOnce) {
                    server.close();
                }
                // Linger 0: close sends RST rather than an orderly end of stream.
                connection.setSoLinger(true, 0);
            } catch (IOException e) {
                // Closed by close(), or the client went away first: either way, next connection.
            }
        }
    }

    /** Reads one request (head and Content-Length body) off the wire. */
    static Request read(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        while (!head.toString(StandardCharsets.ISO_8859_1).endsWith("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("connection closed inside the request head");
            }
            head.write(b);
        }
        Request partial = new Request(head.toString(StandardCharsets.ISO_8859_1), "");
        String length = partial.header("Content-Length");
        byte[] body = in.readNBytes(length == null ? 0 : Integer.parseInt(length));
        return new Request(partial.head(), new String(body, StandardCharsets.UTF_8));
    }

    @Override
    public void close() throws IOException {
        server.close();
    }
}
