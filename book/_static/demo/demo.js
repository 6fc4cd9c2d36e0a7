// The book's early-exit model, running in the reader's browser with onnxruntime-web (WASM, one thread).
// Chapter 9 writes the model (early_exit.onnx) and a gallery of test images with what Python's ONNX
// Runtime answered for each (gallery.json); this page answers again, here, and shows it.
// window.earlyExitDemo.ready resolves when the model is loaded; runAll() answers every gallery image
// (the browser test compares those answers with Python's).
(function () {
  "use strict";
  const root = document.getElementById("early-exit-demo");
  if (!root) return;
  const base = new URL(root.dataset.base, document.baseURI);  // the folder of _static
  const status = root.querySelector(".demo-status");
  const gallery = root.querySelector(".demo-gallery");
  const output = root.querySelector(".demo-output");
  const say = (text, kind) => { status.textContent = text; status.dataset.kind = kind || "info"; };

  function decode(b64) {  // base64 -> Float32Array (little-endian float32, as numpy wrote it)
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  function thumbnail(pixels, mean, std) {  // a normalised image, drawn back as grey levels
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    const context = canvas.getContext("2d");
    const picture = context.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const grey = 255 - Math.max(0, Math.min(255, Math.round((pixels[i] * std + mean) * 255)));
      picture.data.set([grey, grey, grey, 255], 4 * i);
    }
    context.putImageData(picture, 0, 0);
    return canvas;
  }

  function softmaxMax(logits) {
    const top = Math.max(...logits);
    const sum = logits.reduce((s, v) => s + Math.exp(v - top), 0);
    return 1 / sum;
  }

  async function answer(session, pixels) {
    const input = new ort.Tensor("float32", pixels, [1, 1, 28, 28]);
    const start = performance.now();
    const out = await session.run({ images: input });
    const milliseconds = performance.now() - start;
    const logits = Array.from(out.logits.data);
    return { logits, prediction: logits.indexOf(Math.max(...logits)),
             exit: Number(out.exit_number.data[0]), confidence: softmaxMax(logits), milliseconds };
  }

  function show(item, result, classes) {
    const right = result.prediction === item.label;
    output.innerHTML = "";
    const line = (label, value) => {
      const row = document.createElement("div");
      row.innerHTML = `<strong>${label}</strong> ${value}`;
      output.appendChild(row);
    };
    line("predicted:", `${classes[result.prediction]} ${right ? "(right)" : `(wrong: it is ${classes[item.label]})`}`);
    line("left at:", `exit ${result.exit}${result.exit === 1 ? " (block 2 skipped)" : " (the whole network)"}`);
    line("confidence (max softmax):", result.confidence.toFixed(3));
    line("time in this browser:", `${result.milliseconds.toFixed(2)} ms`);
  }

  const ready = (async () => {
    if (typeof WebAssembly !== "object" || typeof ort === "undefined") {
      throw new Error("this browser cannot run WebAssembly here, or onnxruntime-web did not load");
    }
    ort.env.wasm.numThreads = 1;  // GitHub Pages sends no cross-origin isolation headers
    ort.env.wasm.wasmPaths = new URL("ort/", base).href;
    const [session, data] = await Promise.all([
      ort.InferenceSession.create(new URL("demo/early_exit.onnx", base).href),
      fetch(new URL("demo/gallery.json", base)).then((r) => r.json()),
    ]);
    const items = data.images.map((item) => ({ ...item, pixels: decode(item.pixels) }));
    items.forEach((item, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.title = `test image ${item.index}: ${data.classes[item.label]}`;
      button.appendChild(thumbnail(item.pixels, data.mean, data.std));
      button.addEventListener("click", async () => {
        gallery.querySelectorAll("button").forEach((b) => b.classList.remove("chosen"));
        button.classList.add("chosen");
        show(item, await answer(session, item.pixels), data.classes);
      });
      gallery.appendChild(button);
    });
    say(`Model loaded (onnxruntime-web ${ort.env.versions ? ort.env.versions.web || "" : ""}, WASM, one thread). ` +
        "Pick an image.", "ready");
    return { session, items, classes: data.classes };
  })();

  ready.catch((error) => say(`The live model cannot run here: ${error.message}. ` +
                             "The chapter's printed results above do not need it.", "error"));

  window.earlyExitDemo = {
    ready,
    async runAll() {
      const { session, items } = await ready;
      const results = [];
      for (const item of items) results.push(await answer(session, item.pixels));
      return results;
    },
  };
})();
