// The book's early-exit model, running in the reader's browser with onnxruntime-web (WASM, one thread).
// Chapter 9 writes the model (early_exit.onnx) and a gallery of test images with what Python's ONNX
// Runtime answered for each (gallery.json); this page answers again, here, and shows it.
//
// Nothing heavy loads with the page: the gallery's thumbnails (gallery.json, about 0.1 MB) do, but the
// runtime and the model (about 14 MB) load only when the reader first picks or draws an image. The
// model is then warmed up (its first runs pay for compiling and allocating), so that the times shown
// are those of an image, not of the start-up.
//
// The graph's outputs are the logits and the exit taken. To show *why* an image went on, the page also
// reads the exit-1 score and the threshold from the graph itself: the `Greater(score, threshold)` node
// of the exit decision names the score tensor, which is added to the graph's outputs, and the constant
// threshold. Nothing else in the graph changes, so the answers are the ones Python's ONNX Runtime gave.
//
// window.earlyExitDemo: load() loads the model (once) and resolves when it is warm; runAll() answers
// every gallery image once (the browser tests compare those answers with Python's); answer(pixels)
// answers one normalised 28x28 image; loaded, threshold and warmupMilliseconds say what happened.
(function () {
  "use strict";
  const root = document.getElementById("early-exit-demo");
  if (!root) return;
  const base = new URL(root.dataset.base || "../_static/", document.baseURI);  // the folder of _static
  const part = (name, tag, className) => root.querySelector(`.${className}`) ||
    root.appendChild(Object.assign(document.createElement(tag), { className }));
  const status = part("status", "p", "demo-status");
  const gallery = part("gallery", "div", "demo-gallery");
  const pad = part("draw", "div", "demo-draw");
  const output = part("output", "div", "demo-output");
  output.setAttribute("aria-live", "polite");
  const say = (text, kind) => { status.textContent = text; status.dataset.kind = kind || "info"; };
  const SIDE = 28, PIXELS = SIDE * SIDE, SCALE = 6;  // the drawing pad is 6 x 28 = 168 px square
  const TIMED_RUNS = 5;  // the time shown: the median of this many runs of the same image

  // ---- ONNX (protobuf) reading: just enough to find the exit decision and add one output ----

  function varint(bytes, pos) {
    let value = 0, scale = 1, byte;
    do { byte = bytes[pos++]; value += (byte & 0x7f) * scale; scale *= 128; } while (byte & 0x80);
    return [value, pos];
  }

  function fields(bytes, from, to) {  // the fields of one protobuf message: number, wire type, where
    const found = [];
    let pos = from;
    while (pos < to) {
      const start = pos;
      let tag, value = null, length;
      [tag, pos] = varint(bytes, pos);
      const number = Math.floor(tag / 8), wire = tag % 8;
      let begin = pos;
      if (wire === 0) [value, pos] = varint(bytes, pos);
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) { [length, pos] = varint(bytes, pos); begin = pos; pos += length; }
      else throw new Error(`unexpected protobuf wire type ${wire}`);
      found.push({ number, wire, value, start, begin, end: pos });
    }
    return found;
  }

  const utf8 = new TextDecoder();
  const text = (bytes, f) => utf8.decode(bytes.subarray(f.begin, f.end));

  function scalar(bytes, tensor) {  // a TensorProto holding one float (or double): its value, else null
    let type = 1, count = 1, data = null;
    for (const f of fields(bytes, tensor.begin, tensor.end)) {
      if (f.number === 1 && f.wire === 0) count *= f.value;  // dims
      else if (f.number === 1 && f.wire === 2) {  // dims, packed
        for (let pos = f.begin, dim; pos < f.end; count *= dim) [dim, pos] = varint(bytes, pos);
      } else if (f.number === 2) type = f.value;  // data_type: 1 float, 11 double
      else if (f.number === 9 || f.number === 4 || f.number === 10) data = f;  // raw_data, float_data, double_data
    }
    const size = type === 11 ? 8 : 4;
    if (count !== 1 || (type !== 1 && type !== 11) || !data || data.end - data.begin !== size) return null;
    const view = new DataView(bytes.buffer, bytes.byteOffset + data.begin, size);
    return type === 11 ? view.getFloat64(0, true) : view.getFloat32(0, true);
  }

  function tensorName(bytes, tensor) {
    const name = fields(bytes, tensor.begin, tensor.end).find((f) => f.number === 8);
    return name ? text(bytes, name) : "";
  }

  function encodeVarint(n) {
    const out = [];
    while (n > 127) { out.push((n % 128) | 128); n = Math.floor(n / 128); }
    out.push(n);
    return out;
  }

  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const lengthDelimited = (number, payload) =>
    concat(Uint8Array.from(encodeVarint(number * 8 + 2)), Uint8Array.from(encodeVarint(payload.length)), payload);

  // The model with the exit-1 score as one more output, the score's name and the threshold; the model
  // unchanged (and no threshold) when its exit decision is not one `Greater(score, constant)`.
  function withExitScore(bytes) {
    const graph = fields(bytes, 0, bytes.length).find((f) => f.number === 7 && f.wire === 2);
    if (!graph) throw new Error("early_exit.onnx holds no graph");
    const constants = new Map(), producers = new Map(), decisions = [];
    for (const f of fields(bytes, graph.begin, graph.end)) {
      if (f.number === 5) {  // initializer
        const value = scalar(bytes, f);
        if (value !== null) constants.set(tensorName(bytes, f), value);
      } else if (f.number === 1) {  // node
        const node = { inputs: [], outputs: [], op: "", value: null };
        for (const g of fields(bytes, f.begin, f.end)) {
          if (g.number === 1) node.inputs.push(text(bytes, g));
          else if (g.number === 2) node.outputs.push(text(bytes, g));
          else if (g.number === 4) node.op = text(bytes, g);
          else if (g.number === 5) {  // attribute: a Constant node's value
            const attribute = fields(bytes, g.begin, g.end);
            const name = attribute.find((a) => a.number === 1);
            const tensor = attribute.find((a) => a.number === 5);
            const float = attribute.find((a) => a.number === 2 && a.wire === 5);
            if (name && text(bytes, name) === "value" && tensor) node.value = scalar(bytes, tensor);
            if (name && text(bytes, name) === "value_float" && float) {
              node.value = new DataView(bytes.buffer, bytes.byteOffset + float.begin, 4).getFloat32(0, true);
            }
          }
        }
        node.outputs.forEach((name) => producers.set(name, node.op));
        if (node.op === "Constant" && node.value !== null) constants.set(node.outputs[0], node.value);
        if (node.op === "Greater" || node.op === "GreaterOrEqual") decisions.push(node);
      }
    }
    const found = decisions.filter((n) => n.inputs.length === 2 && constants.has(n.inputs[1]));
    if (found.length !== 1) return { bytes, score: null, threshold: null, criterion: null };
    const [score, limit] = found[0].inputs;
    const valueInfo = concat(lengthDelimited(1, new TextEncoder().encode(score)),  // name
                             lengthDelimited(2, lengthDelimited(1, Uint8Array.of(0x08, 0x01))));  // float tensor
    const payload = concat(bytes.subarray(graph.begin, graph.end), lengthDelimited(12, valueInfo));  // + output
    return {
      bytes: concat(bytes.subarray(0, graph.start), lengthDelimited(7, payload), bytes.subarray(graph.end)),
      score, threshold: constants.get(limit), strict: found[0].op === "Greater",
      criterion: producers.get(score) === "ReduceMax" ? "max softmax" : "score",
    };
  }

  // ---- images ----

  function decode(b64) {  // base64 -> Float32Array (little-endian float32, as numpy wrote it)
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  // Images are drawn as the model sees them, as Fashion-MNIST stores them: light garment on black.
  function draw(canvas, pixels, mean, std) {
    const context = canvas.getContext("2d");
    const picture = context.createImageData(SIDE, SIDE);
    for (let i = 0; i < PIXELS; i++) {
      const grey = Math.max(0, Math.min(255, Math.round((pixels[i] * std + mean) * 255)));
      picture.data.set([grey, grey, grey, 255], 4 * i);
    }
    context.putImageData(picture, 0, 0);
    return canvas;
  }

  const small = () => Object.assign(document.createElement("canvas"), { width: SIDE, height: SIDE });

  function softmaxMax(logits) {
    const top = Math.max(...logits);
    return 1 / logits.reduce((s, v) => s + Math.exp(v - top), 0);
  }

  const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];

  // ---- the model: loaded on first use, warmed up, one run at a time ----

  let data = null, items = [], model = null, loading = null, queue = Promise.resolve();
  const api = { loaded: false, threshold: null, warmupMilliseconds: null };

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement("script"), { src, async: true });
      script.onload = resolve;
      script.onerror = () => reject(new Error("onnxruntime-web did not load"));
      document.head.appendChild(script);
    });
  }

  async function runOnce(pixels) {  // one run of the graph on one normalised image
    const input = new ort.Tensor("float32", pixels, [1, 1, SIDE, SIDE]);
    const start = performance.now();
    const out = await model.session.run({ images: input });
    const milliseconds = performance.now() - start;
    const logits = Array.from(out.logits.data);
    return {
      logits, milliseconds, prediction: logits.indexOf(Math.max(...logits)),
      exit: Number(out.exit_number.data[0]), confidence: softmaxMax(logits),
      exit1Confidence: model.score ? Number(out[model.score].data[0]) : null,
    };
  }

  const serial = (job) => { const run = queue.then(job); queue = run.catch(() => {}); return run; };

  function load() {
    if (!loading) {
      loading = (async () => {
        say("Loading the model (about 14 MB, once)...", "loading");
        if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
        if (typeof ort === "undefined") await loadScript(new URL("ort/ort.wasm.min.js", base).href);
        ort.env.wasm.numThreads = 1;  // GitHub Pages sends no cross-origin isolation headers
        ort.env.wasm.wasmPaths = new URL("ort/", base).href;
        const [bytes] = await Promise.all([
          fetch(new URL("demo/early_exit.onnx", base)).then((r) => {
            if (!r.ok) throw new Error(`early_exit.onnx: HTTP ${r.status}`);
            return r.arrayBuffer();
          }),
          galleryReady,
        ]);
        const graph = withExitScore(new Uint8Array(bytes));
        model = { session: await ort.InferenceSession.create(graph.bytes), ...graph };
        // Warm-up: the first runs compile and allocate. Both paths (an image that leaves at exit 1,
        // one that goes on) run a few times before any time is shown.
        const warm = [items.find((i) => i.exit_number === 1), items.find((i) => i.exit_number === 2)]
          .filter(Boolean).map((i) => i.pixels);
        if (!warm.length) warm.push(new Float32Array(PIXELS));
        for (let round = 0; round < 3; round++) {
          for (const pixels of warm) {
            const { milliseconds } = await runOnce(pixels);
            if (api.warmupMilliseconds === null) api.warmupMilliseconds = milliseconds;
          }
        }
        Object.assign(api, { loaded: true, threshold: model.threshold });
        const version = ort.env.versions ? ort.env.versions.web || "" : "";
        say(`Model ready (onnxruntime-web ${version}, WASM, one thread)` +
            (model.threshold === null ? ". " : `: an image leaves at exit 1 when its exit-1 ${model.criterion} ` +
             `is ${model.strict ? "above" : "at least"} ${model.threshold.toFixed(3)}. `) +
            "Pick or draw an image.", "ready");
        return model;
      })();
      loading.catch((error) => say(`The live model cannot run here: ${error.message}. ` +
                                   "The chapter's printed results above do not need it.", "error"));
    }
    return loading;
  }

  // An image's answer as shown: the median time of a few runs (all give the same answer).
  async function answerTimed(pixels) {
    await load();
    return serial(async () => {
      const runs = [];
      for (let i = 0; i < TIMED_RUNS; i++) runs.push(await runOnce(pixels));
      return { ...runs[0], milliseconds: median(runs.map((r) => r.milliseconds)), runs: TIMED_RUNS };
    });
  }

  function show(result, item, where) {
    const classes = data.classes;
    where.replaceChildren();
    const line = (label, value) => {
      const row = document.createElement("div");
      const strong = document.createElement("strong");
      strong.textContent = label;
      row.append(strong, ` ${value}`);
      where.appendChild(row);
    };
    const source = item ? `test image ${item.index}` : "your drawing";
    let verdict = "";
    if (item) verdict = result.prediction === item.label ? " (right)" : ` (wrong: it is ${classes[item.label]})`;
    line(`${source}, predicted:`, `${classes[result.prediction]}${verdict}`);
    if (model.threshold !== null && result.exit1Confidence !== null) {
      const score = result.exit1Confidence.toFixed(3), limit = model.threshold.toFixed(3);
      const [over, under] = model.strict ? ["above", "not above"] : ["at least", "below"];
      line(`exit-1 confidence (${model.criterion}):`, result.exit === 1
        ? `${score}, ${over} the threshold ${limit}`
        : `${score}, ${under} the threshold ${limit}: not sure enough to stop`);
    } else if (result.exit === 1) {  // a graph whose exit decision the page could not read
      line("confidence (max softmax):", result.confidence.toFixed(3));
    }
    line("left at:", `exit ${result.exit}${result.exit === 1 ? " (block 2 skipped)" : " (the whole network)"}`);
    if (result.exit === 2) line("exit-2 confidence (max softmax):", result.confidence.toFixed(3));
    line("time in this browser:", `${result.milliseconds.toFixed(2)} ms (median of ${result.runs} runs)`);
  }

  async function pick(button, item) {
    gallery.querySelectorAll("button").forEach((b) => b.classList.remove("chosen"));
    button.classList.add("chosen");
    const result = await answerTimed(item.pixels);
    show(result, item, output);
    // Only now, with the model's answer shown, may the thumbnail tell its true class.
    button.title = `test image ${item.index}: ${data.classes[item.label]}`;
  }

  // ---- the gallery (loaded with the page: small) ----

  const galleryReady = (async () => {
    const response = await fetch(new URL("demo/gallery.json", base));
    if (!response.ok) throw new Error(`gallery.json: HTTP ${response.status}`);
    data = await response.json();
    items = data.images.map((item) => ({ ...item, pixels: decode(item.pixels) }));
    for (const item of items) {
      const button = document.createElement("button");
      button.type = "button";
      button.title = `test image ${item.index}`;  // its class is told only after the model's answer
      button.setAttribute("aria-label", `test image ${item.index}`);
      button.appendChild(draw(small(), item.pixels, data.mean, data.std));
      button.addEventListener("click", () => pick(button, item).catch(() => {}));
      gallery.appendChild(button);
    }
  })();

  // ---- the drawing pad ----

  function buildPad() {
    pad.replaceChildren();
    const canvas = Object.assign(document.createElement("canvas"),
                                 { width: SIDE * SCALE, height: SIDE * SCALE, className: "demo-pad" });
    canvas.setAttribute("aria-label", "drawing pad: draw a garment in white");
    const seen = draw(small(), new Float32Array(PIXELS).fill(-data.mean / data.std), data.mean, data.std);
    seen.className = "demo-seen";
    seen.setAttribute("aria-label", "your drawing at 28 x 28 pixels, as the model sees it");
    const context = canvas.getContext("2d");
    const fill = (colour) => { context.fillStyle = colour; context.fillRect(0, 0, canvas.width, canvas.height); };
    fill("black");

    function pixels() {  // the pad averaged down to 28 x 28, normalised as the training images were
      const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const out = new Float32Array(PIXELS);
      for (let y = 0; y < SIDE; y++) {
        for (let x = 0; x < SIDE; x++) {
          let sum = 0;
          for (let dy = 0; dy < SCALE; dy++) {
            for (let dx = 0; dx < SCALE; dx++) sum += rgba[4 * ((y * SCALE + dy) * canvas.width + x * SCALE + dx)];
          }
          out[y * SIDE + x] = (sum / (SCALE * SCALE * 255) - data.mean) / data.std;
        }
      }
      return out;
    }

    async function answerDrawing() {
      const image = pixels();
      draw(seen, image, data.mean, data.std);
      show(await answerTimed(image), null, answered);
    }
    const answerLater = () => answerDrawing().catch(() => {});

    let drawing = false, last = null;
    const at = (event) => {
      const box = canvas.getBoundingClientRect();
      return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
    };
    canvas.addEventListener("pointerdown", (event) => {
      drawing = true;
      last = at(event);
      canvas.setPointerCapture(event.pointerId);
      load().catch(() => {});  // the first stroke starts loading the model
      stroke(last);
    });
    canvas.addEventListener("pointermove", (event) => { if (drawing) stroke(at(event)); });
    const stop = () => { if (drawing) { drawing = false; answerLater(); } };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    function stroke(point) {
      context.strokeStyle = "white";
      context.lineWidth = 2.4 * SCALE;  // about as wide as a garment's edge in the training images
      context.lineCap = context.lineJoin = "round";
      context.beginPath();
      context.moveTo(...last);
      context.lineTo(...point);
      context.stroke();
      last = point;
    }

    const button = (label, title, action) => {
      const b = Object.assign(document.createElement("button"), { type: "button", textContent: label, title });
      b.addEventListener("click", () => { action(); answerLater(); });
      return b;
    };
    const controls = document.createElement("div");
    controls.className = "demo-draw-controls";
    controls.append(
      button("Clear", "a blank image: nothing drawn", () => fill("black")),
      button("Fill white", "every pixel at full brightness", () => fill("white")),
      Object.assign(document.createElement("span"), { textContent: "28 x 28, as the model sees it:" }), seen);
    const hint = document.createElement("p");
    hint.className = "demo-draw-hint";
    hint.textContent = "Or draw a garment (white on black, as the training images are) and let go: " +
                       "the model answers what it sees. Try a blank image, or a white one, too.";
    const answered = document.createElement("div");  // a drawing's answer, beside it
    answered.className = "demo-output demo-draw-output";
    answered.setAttribute("aria-live", "polite");
    const side = document.createElement("div");
    side.className = "demo-draw-side";
    side.append(controls, answered);
    const row = document.createElement("div");
    row.className = "demo-draw-row";
    row.append(canvas, side);
    pad.append(hint, row);
  }

  // ---- start ----

  if (typeof WebAssembly !== "object") {
    say("The live model cannot run here: this browser has no WebAssembly. " +
        "The chapter's printed results above do not need it.", "error");
  } else {
    say("Pick a test image or draw one: the model (about 14 MB) loads then, once.", "idle");
  }
  galleryReady.then(buildPad).catch((error) => say(`The live model cannot run here: ${error.message}.`, "error"));

  window.earlyExitDemo = Object.assign(api, {
    load,
    answer: (pixels) => answerTimed(pixels),
    async runAll() {
      await load();
      return serial(async () => {
        const results = [];
        for (const item of items) results.push(await runOnce(item.pixels));
        return results;
      });
    },
  });
})();
