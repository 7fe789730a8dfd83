package io.mailbridge.keycloak;

import java.io.ByteArrayOutputStream;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;

/**
 * Reads the body of one answer as UTF-8 text, at most {@code limit} bytes: a longer body is left
 * unread (its connection closed) and read as null, so an answer cannot fill Keycloak's memory.
 * Remembers whether the answer's head has arrived, and can give up on a body that never ends.
 */
final class BoundedAnswer implements HttpResponse.BodyHandler<String> {

    private final int limit;
    private volatile Body body;

    BoundedAnswer(int limit) {
        this.limit = limit;
    }

    @Override
    public HttpResponse.BodySubscriber<String> apply(HttpResponse.ResponseInfo head) {
        Body next = new Body(limit);
        body = next;
        return next;
    }

    /** True once the answer's status and headers have arrived (so the request was sent). */
    boolean headArrived() {
        return body != null;
    }

    /** Stops reading a body that did not complete in time; the client then closes its connection. */
    void abandon() {
        Body current = body;
        if (current != null) {
            current.abandon();
        }
    }

    /** The body of one answer, gathered up to the limit. */
    private static final class Body implements HttpResponse.BodySubscriber<String> {

        private final int limit;
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        private final CompletableFuture<String> text = new CompletableFuture<>();
        private volatile Flow.Subscription subscription;

        Body(int limit) {
            this.limit = limit;
        }

        @Override
        public void onSubscribe(Flow.Subscription subscription) {
            this.subscription = subscription;
            subscription.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(List<ByteBuffer> buffers) {
            if (text.isDone()) {
                return;
            }
            for (ByteBuffer buffer : buffers) {
                if (bytes.size() + buffer.remaining() > limit) {
                    // Over the limit: stop reading; the answer is unreadable whatever follows.
                    subscription.cancel();
                    text.complete(null);
                    return;
                }
                byte[] chunk = new byte[buffer.remaining()];
                buffer.get(chunk);
                bytes.write(chunk, 0, chunk.length);
            }
        }

        @Override
        public void onError(Throwable error) {
            text.completeExceptionally(error);
        }

        @Override
        public void onComplete() {
            text.complete(bytes.toString(StandardCharsets.UTF_8));
        }

        @Override
        public CompletionStage<String> getBody() {
            return text;
        }

        void abandon() {
            Flow.Subscription current = subscription;
            if (current != null) {
                current.cancel();
            }
        }
    }
}
