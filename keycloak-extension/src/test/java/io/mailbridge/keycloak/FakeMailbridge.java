package io.mailbridge.keycloak;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/** Stands in for the mailbridge service on 127.0.0.1: records requests, answers as told. */
final class FakeMailbridge implements AutoCloseable {

    /** One request as the service saw it. */
    record Request(String method, String path, String query, Map<String, List<String>> headers, String body) {
        JsonNode json() throws IOException {
            return new ObjectMapper().readTree(body);
        }

        String header(String name) {
            return headers.entrySet().stream()
                    .filter(e -> e.getKey().equalsIgnoreCase(name))
                    .map(e -> e.getValue().get(0))
                    .findFirst().orElse(null);
        }
    }

    private final HttpServer server;
    private final ExecutorService executor = Executors.newCachedThreadPool();
    private final List<Request> requests = new CopyOnWriteArrayList<>();
    private final CountDownLatch released = new CountDownLatch(1);
    private volatile int status = 202;
    private volatile String contentType = "application/json";
    private volatile String answer = "{\"id\":\"0b7c4a52-6f55-4d0c-a2d4-3d1f0f2f6a11\",\"status\":\"queued\"}";
    private volatile boolean silent;
    private final ConcurrentLinkedQueue<Duration> delays = new ConcurrentLinkedQueue<>();

    FakeMailbridge() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::handle);
        server.setExecutor(executor);
        server.start();
    }

    URI url() {
        return URI.create("http://127.0.0.1:" + server.getAddress().getPort());
    }

    /** Answer every request with this status, content type and body. */
    FakeMailbridge answer(int status, String contentType, String body) {
        this.status = status;
        this.contentType = contentType;
        this.answer = body;
        return this;
    }

    /** Read requests but never answer them (until closed). */
    FakeMailbridge neverAnswer() {
        this.silent = true;
        return this;
    }

    /** Answer the next requests only after these delays, one per request; later ones at once. */
    FakeMailbridge answerLate(Duration... delays) {
        this.delays.addAll(List.of(delays));
        return this;
    }

    List<Request> requests() {
        return requests;
    }

    Request only() {
        if (requests.size() != 1) {
            throw new AssertionError("expected exactly one request, got " + requests.size());
        }
        return requests.get(0);
    }

    private void handle(HttpExchange exchange) throws IOException {
        String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
        URI uri = exchange.getRequestURI();
        requests.add(new Request(exchange.getRequestMethod(), uri.getPath(), uri.getQuery(),
                Map.copyOf(exchange.getRequestHeaders()), body));
        if (silent) {
            pause(Duration.ofSeconds(30));
            exchange.close();
            return;
        }
        Duration delay = delays.poll();
        if (delay != null) {
            pause(delay);
        }
        byte[] bytes = answer.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().add("Content-Type", contentType);
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    private void pause(Duration delay) {
        try {
            released.await(delay.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        released.countDown();
        server.stop(0);
        executor.shutdownNow();
    }
}
