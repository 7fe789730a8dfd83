package io.mailbridge.keycloak.render;

import com.dylibso.chicory.runtime.ExportFunction;
import com.dylibso.chicory.runtime.Instance;
import com.dylibso.chicory.runtime.Memory;
import com.dylibso.chicory.wasm.WasmModule;
import com.dylibso.chicory.wasm.types.MemoryLimits;
import io.mailbridge.keycloak.render.wasm.MailbridgeRender;
import java.nio.charset.StandardCharsets;

/**
 * One instance of the renderer module (compiled to JVM bytecode at build time) with its templates
 * loaded. Not thread-safe: one thread uses it at a time. After any exception (a trap, an
 * interrupt) its memory may be half-written: throw it away.
 */
final class RenderModule {

    /** The parsed module, shared by every instance (it holds no state of a render). */
    private static final class Shared {
        static final WasmModule MODULE = MailbridgeRender.load();
    }

    private final Memory memory;
    private final ExportFunction alloc;
    private final ExportFunction free;
    private final ExportFunction len;
    private final ExportFunction loadTemplates;
    private final ExportFunction render;

    /** Instantiates the module with at most {@code maxMemoryBytes} of memory and loads {@code templates}. */
    RenderModule(TemplateFiles templates, long maxMemoryBytes) {
        int maxPages = (int) Math.max(1, maxMemoryBytes / Memory.PAGE_SIZE);
        int initialPages = Shared.MODULE.memorySection().orElseThrow().getMemory(0).limits().initialPages();
        Instance instance =
                Instance.builder(Shared.MODULE)
                        .withMachineFactory(MailbridgeRender::create)
                        .withMemoryLimits(new MemoryLimits(Math.min(initialPages, maxPages), maxPages))
                        .build();
        memory = instance.memory();
        alloc = instance.export("mb_alloc");
        free = instance.export("mb_free");
        len = instance.export("mb_len");
        loadTemplates = instance.export("mb_load_templates");
        render = instance.export("mb_render");
        String answer = call(loadTemplates, templates.toJson());
        if (answer.startsWith("{\"error\"")) {
            throw new IllegalArgumentException("the templates do not load: " + answer);
        }
    }

    /** Renders a request (JSON) into {@code {"subject","text","html"}} or {@code {"error","kind"}}. */
    String render(String request) {
        return call(render, request.getBytes(StandardCharsets.UTF_8));
    }

    private String call(ExportFunction function, byte[] input) {
        int address = (int) alloc.apply(input.length)[0];
        memory.write(address, input);
        int answer = (int) function.apply(address)[0];
        int length = (int) len.apply(answer)[0];
        byte[] bytes = memory.readBytes(answer, length);
        free.apply(answer);
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
