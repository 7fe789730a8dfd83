package io.mailbridge.keycloak.render;

import java.time.Duration;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Renders emails with the mailbridge renderer compiled to WebAssembly: the same code, templates and
 * output as the service's {@code POST /v1/render}.
 *
 * <p>Every render is bounded: the renderer's own fuel (a runaway template fails), a memory limit
 * per instance, and a time limit, after which the render is interrupted. Renders run on a small
 * pool of threads, each with its own instance (instances are not thread-safe), so that an
 * interrupt never reaches the caller's thread. An instance that failed in any way (a trap, an
 * interrupt) is thrown away and the next render on that thread gets a fresh one.
 */
public final class WasmRenderer implements AutoCloseable {

    /** Time bound of one render. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);

    /** Bound of a worker's first start: instantiating the module and loading the templates. */
    static final Duration STARTUP_TIMEOUT = Duration.ofSeconds(60);

    /** Memory bound of one instance: the shipped templates render in a few MiB. */
    public static final long DEFAULT_MAX_MEMORY = 64L * 1024 * 1024;

    private final TemplateFiles templates;
    private final Duration timeout;
    private final long maxMemory;
    private final ExecutorService workers;
    private final ThreadLocal<RenderModule> modules = new ThreadLocal<>();
    private final AtomicInteger instances = new AtomicInteger();

    /** A renderer of {@code templates} with the default bounds, one worker per core. */
    public WasmRenderer(TemplateFiles templates) {
        this(templates, DEFAULT_TIMEOUT, DEFAULT_MAX_MEMORY, Runtime.getRuntime().availableProcessors());
    }

    /** A renderer of {@code templates} with these bounds and {@code threads} workers. */
    public WasmRenderer(TemplateFiles templates, Duration timeout, long maxMemory, int threads) {
        this.templates = templates;
        this.timeout = timeout;
        this.maxMemory = maxMemory;
        this.workers = Executors.newFixedThreadPool(Math.max(1, threads), workerThreads());
    }

    /**
     * Renders a request (the body of {@code POST /v1/render} with its {@code tenant}) into {@code
     * {"subject","text","html"}}, or the renderer's {@code {"error","kind"}} (unknown template, a
     * language the template lacks, a template that fails).
     *
     * @throws RenderException when the render broke a bound or trapped
     */
    public String render(String request) throws RenderException {
        // Whether the worker that took it must first make its instance.
        CompletableFuture<Boolean> taken = new CompletableFuture<>();
        CompletableFuture<Void> instantiated = new CompletableFuture<>();
        Future<String> work;
        long asked = System.nanoTime();
        try {
            work = workers.submit(() -> renderHere(request, taken, instantiated));
        } catch (RejectedExecutionException e) {
            // Closed (Keycloak stopping): a render error, which callers answer with Keycloak's own rendering.
            throw new RenderException("the renderer is closed", e);
        }
        long bound = timeout.toMillis();
        try {
            // Waiting for a free worker counts against the bound: a burst of renders (the service
            // down, every email rendered here) must not hold Keycloak's threads in a queue.
            boolean cold = taken.get(bound, TimeUnit.MILLISECONDS);
            long deadline = asked + timeout.toNanos();
            if (cold) {
                // A worker's first render instantiates the module and loads the templates: that
                // takes what the machine takes, not what the template does, so the bound starts after.
                bound = STARTUP_TIMEOUT.toMillis();
                instantiated.get(bound, TimeUnit.MILLISECONDS);
                bound = timeout.toMillis();
                deadline = System.nanoTime() + timeout.toNanos();
            }
            return work.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            work.cancel(true);
            throw new RenderException("the render took longer than " + bound + " ms", e);
        } catch (ExecutionException e) {
            throw new RenderException("the renderer failed: " + e.getCause(), e.getCause());
        } catch (CancellationException e) {
            throw new RenderException("the render was cancelled", e);
        } catch (InterruptedException e) {
            work.cancel(true);
            Thread.currentThread().interrupt();
            throw new RenderException("interrupted while rendering", e);
        }
    }

    private String renderHere(String request, CompletableFuture<Boolean> taken, CompletableFuture<Void> instantiated) {
        RenderModule module = modules.get();
        taken.complete(module == null);
        try {
            if (module == null) {
                module = new RenderModule(templates, maxMemory);
                instances.incrementAndGet();
                modules.set(module);
            }
            instantiated.complete(null);
            return module.render(request);
        } catch (RuntimeException | Error e) {
            instantiated.completeExceptionally(e);
            // Its memory may be half-written: the next render gets a fresh instance.
            modules.remove();
            throw e;
        }
    }

    /**
     * Checks that {@code templates} load into the renderer (every file compiles, every sample is JSON):
     * instantiates the module once and throws it away.
     *
     * @throws IllegalArgumentException naming {@code what} and the renderer's words when they do not
     */
    public static void check(TemplateFiles templates, String what) {
        try {
            new RenderModule(templates, DEFAULT_MAX_MEMORY);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
        }
    }

    /** How many instances were made so far (one per worker, plus one for each thrown away). */
    int instances() {
        return instances.get();
    }

    /** Stops the workers; a render still running is interrupted. */
    @Override
    public void close() {
        workers.shutdownNow();
    }

    private static ThreadFactory workerThreads() {
        AtomicInteger count = new AtomicInteger();
        return work -> {
            Thread thread = new Thread(work, "mailbridge-render-" + count.incrementAndGet());
            // Never keeps Keycloak (or the command line) from exiting.
            thread.setDaemon(true);
            return thread;
        };
    }
}
