// run_onnx.js - runs an ONNX model with onnxruntime-node's CPU provider on rows read
// from a raw float32 file, and writes its one output as a raw float32 file: what the
// ONNX tests (tests/onnx/test_onnx_runtime.cpp) compare with kdtrain's own forward pass.
//
//   node tests/onnx/run_onnx.js MODEL.onnx INPUT.f32 ROWS COLS OUTPUT.f32
//
// INPUT.f32 holds ROWS x COLS float32 values, row-major, little-endian, fed as the
// model's input "input" [ROWS, COLS]; OUTPUT.f32 receives the output tensor the same
// way. One line of JSON on stdout names the output, its shape and onnxruntime's version.
// onnxruntime-node is taken from KD_ONNXRUNTIME_DIR, by default the project's
// .cache/onnxruntime (scripts/bootstrap.sh --onnx installs it there).
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [model, input, rowsText, colsText, output] = process.argv.slice(2);
  if (!output) {
    console.error('usage: node run_onnx.js MODEL.onnx INPUT.f32 ROWS COLS OUTPUT.f32');
    process.exit(2);
  }
  const cache = process.env.KD_ONNXRUNTIME_DIR || path.join(__dirname, '..', '..', '.cache', 'onnxruntime');
  const ort = require(require.resolve('onnxruntime-node', { paths: [cache] }));
  const rows = Number(rowsText), cols = Number(colsText);
  const bytes = fs.readFileSync(input);
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || bytes.length !== rows * cols * 4)
    throw new Error(`${input}: expected ${rows} x ${cols} float32 values (${rows * cols * 4} bytes), found ${bytes.length} bytes`);
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = bytes.readFloatLE(4 * i);

  // One thread: the same sums in the same order on every run.
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
  });
  if (session.inputNames.length !== 1 || session.outputNames.length !== 1)
    throw new Error(`${model}: expected one input and one output, found ${session.inputNames} and ${session.outputNames}`);
  const results = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [rows, cols]) });
  const y = results[session.outputNames[0]];
  const out = Buffer.alloc(4 * y.data.length);
  for (let i = 0; i < y.data.length; i++) out.writeFloatLE(y.data[i], 4 * i);
  fs.writeFileSync(output, out);
  console.log(JSON.stringify({ input: session.inputNames[0], output: session.outputNames[0], dims: y.dims,
                               type: y.type, onnxruntime: ort.env.versions.common }));
}

main().catch((e) => {
  console.error(`run_onnx.js: ${e.message}`);
  process.exit(1);
});
