// tests/servers/sdk/check.mjs: the official OpenAI Node SDK (pinned in
// package.json) against llm-server, as a third party reads it.
//   node check.mjs BASE_URL [stream-error]
// BASE_URL: llm-server's http://127.0.0.1:PORT/v1, started with
// --models gpt-mock,emb-mock; "stream-error": a server started with
// --fault-stream-error 1, where a stream must end in the SDK's APIError.
// Prints "ok: ..." per check; exits 1 on the first failure.
import OpenAI, { APIError, BadRequestError, NotFoundError } from 'openai';

const client = new OpenAI({
	baseURL: process.argv[2],
	apiKey: 'sk-mock',
	maxRetries: 0,
	timeout: 10000,
});
const MODEL = 'gpt-mock';
const REQ_ID = /^req_[0-9a-f]{32}$/;
const CALL_ID = /^call_[0-9a-f]{24}$/;

function check(cond, what, data) {
	if (!cond) {
		console.error(`FAIL: ${what}` +
			(data === undefined ? '' : `: ${JSON.stringify(data)}`));
		process.exit(1);
	}
}

function same(a, b, what) {
	check(JSON.stringify(a) === JSON.stringify(b), what, { got: a, want: b });
}

const tools = [
	{
		type: 'function',
		function: {
			name: 'calc',
			description: 'arithmetic',
			parameters: {
				type: 'object',
				properties: { expression: { type: 'string' } },
				required: ['expression'],
			},
		},
	},
	{
		type: 'function',
		function: {
			name: 'lookup',
			parameters: {
				type: 'object',
				properties: { q: { type: 'string' }, k: { type: 'integer' } },
			},
		},
	},
];
const ask = 'lookup {"q": "myriad"} then calc {"expression": "6*7"}';

async function streamError() {
	const stream = await client.chat.completions.create({
		model: MODEL,
		messages: [{ role: 'user', content: 'hello' }],
		stream: true,
	});
	let pieces = 0;
	try {
		for await (const chunk of stream)
			pieces += chunk.choices.length;
	} catch (e) {
		check(e instanceof APIError, 'stream error: an APIError', String(e));
		check(/server had an error/.test(e.message), 'stream error message', e.message);
		check(pieces > 1, 'stream error: content came first', pieces);
		console.log('ok: an error event mid-stream is the SDK\'s APIError');
		return;
	}
	check(false, 'stream error: the stream ended without an error');
}

async function main() {
	// Chat; the x-request-id as the SDK exposes it.
	const { data: chat, response, request_id } = await client.chat.completions
		.create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] })
		.withResponse();
	check(/^reply \d+ to 1 message$/.test(chat.choices[0].message.content),
		'chat content', chat);
	check(chat.choices[0].finish_reason === 'stop', 'chat finish_reason', chat);
	check(chat.model === MODEL && chat.object === 'chat.completion', 'chat object', chat);
	check(REQ_ID.test(request_id) && response.status === 200, 'x-request-id', request_id);
	console.log('ok: chat, x-request-id ' + request_id);

	// n = 3.
	const three = await client.chat.completions.create({
		model: MODEL, n: 3, messages: [{ role: 'user', content: 'hi' }],
	});
	same(three.choices.map((c) => c.index), [0, 1, 2], 'n=3 indexes');
	check(three.choices.every((c) => c.finish_reason === 'stop' &&
		c.message.content === three.choices[0].message.content), 'n=3 choices', three);
	check(three.usage.completion_tokens === 15, 'n=3 usage', three.usage);
	console.log('ok: n=3');

	// Tools: calls in text order, then the final answer after tool messages.
	const msgs = [{ role: 'user', content: ask }];
	const called = await client.chat.completions.create({ model: MODEL, messages: msgs, tools });
	const msg = called.choices[0].message;
	check(called.choices[0].finish_reason === 'tool_calls' && msg.content === null,
		'tool calls finish_reason', called);
	same(msg.tool_calls.map((t) => [t.type, t.function.name, t.function.arguments]),
		[['function', 'lookup', '{"q":"myriad"}'], ['function', 'calc', '{"expression":"6*7"}']],
		'tool calls');
	check(msg.tool_calls.every((t) => CALL_ID.test(t.id)), 'tool call ids', msg.tool_calls);
	const results = msg.tool_calls.map((t, i) => ({
		role: 'tool', tool_call_id: t.id, content: i ? '42' : 'a runtime',
	}));
	const final = await client.chat.completions.create({
		model: MODEL, messages: [...msgs, msg, ...results], tools,
	});
	same(final.choices[0].message.content, 'tool results: a runtime; 42', 'final answer');
	check(final.choices[0].finish_reason === 'stop' && !final.choices[0].message.tool_calls,
		'final answer finish_reason', final);
	console.log('ok: tool calls and the final answer');

	// The SDK's stream helper: content, and usage in its own chunk.
	let chunks = [];
	const s1 = client.chat.completions.stream({
		model: MODEL, messages: [{ role: 'user', content: 'hello' }],
		stream_options: { include_usage: true },
	});
	for await (const chunk of s1)
		chunks.push(chunk);
	const f1 = await s1.finalChatCompletion();
	check(/^reply \d+ to 1 message$/.test(f1.choices[0].message.content), 'stream content', f1);
	check(f1.choices[0].finish_reason === 'stop', 'stream finish_reason', f1);
	const last = chunks[chunks.length - 1];
	check(last.choices.length === 0 && last.usage.completion_tokens === 5 &&
		last.usage.total_tokens === last.usage.prompt_tokens + 5, 'usage chunk', last);
	check(chunks.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1),
		'usage null on the other chunks', chunks);
	console.log('ok: stream helper, include_usage');

	// A stream without include_usage: no usage anywhere.
	chunks = [];
	for await (const chunk of await client.chat.completions.create({
		model: MODEL, messages: [{ role: 'user', content: 'hello' }], stream: true,
	}))
		chunks.push(chunk);
	check(chunks.every((c) => c.usage === undefined && c.choices.length === 1),
		'no usage unasked', chunks);
	console.log('ok: stream without usage');

	// Tool calls streamed: the helper reassembles what the plain call said.
	const s2 = client.chat.completions.stream({ model: MODEL, messages: msgs, tools });
	const argsDone = [];
	s2.on('tool_calls.function.arguments.done', (e) => argsDone.push([e.name, e.arguments]));
	const f2 = await s2.finalChatCompletion();
	check(f2.choices[0].finish_reason === 'tool_calls', 'streamed tool calls finish_reason', f2);
	same(f2.choices[0].message.tool_calls.map((t) => [t.function.name, t.function.arguments]),
		msg.tool_calls.map((t) => [t.function.name, t.function.arguments]),
		'streamed tool calls = plain');
	same(argsDone, msg.tool_calls.map((t) => [t.function.name, t.function.arguments]),
		'arguments.done events');
	console.log('ok: streamed tool calls');

	// Embeddings: the SDK's default (base64, decoded by it) and float.
	const input = ['first text', 'second text'];
	const b64 = await client.embeddings.create({ model: 'emb-mock', input });
	const flt = await client.embeddings.create({ model: 'emb-mock', input, encoding_format: 'float' });
	same(b64.data.map((d) => d.index), [0, 1], 'embedding indexes');
	check(b64.data.every((d) => d.embedding.length === 8), 'embedding length', b64);
	for (const i of [0, 1])
		same(b64.data[i].embedding, flt.data[i].embedding.map(Math.fround),
			'base64 decodes to the float answer');
	check(JSON.stringify(b64.data[0].embedding) !== JSON.stringify(b64.data[1].embedding),
		'distinct embeddings');
	const d5 = await client.embeddings.create({ model: 'emb-mock', input: 'x', dimensions: 5 });
	check(d5.data.length === 1 && d5.data[0].embedding.length === 5, 'dimensions', d5);
	console.log('ok: embeddings base64 (default) and float, dimensions');

	// Errors as the SDK's classes.
	try {
		await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] });
		check(false, 'model_not_found: no error');
	} catch (e) {
		check(e instanceof NotFoundError && e.status === 404 && e.code === 'model_not_found' &&
			e.type === 'invalid_request_error' && e.param === null,
			'model_not_found as NotFoundError', String(e));
		check(e.message.includes('The model `nope` does not exist'), 'model_not_found message', e.message);
		check(REQ_ID.test(e.requestID), 'error x-request-id', e.requestID);
	}
	try {
		await client.chat.completions.create({ model: MODEL, n: 200, messages: [{ role: 'user', content: 'x' }] });
		check(false, 'n=200: no error');
	} catch (e) {
		check(e instanceof BadRequestError && e.param === 'n' && e.code === 'integer_above_max_value',
			'n=200 as BadRequestError', String(e));
	}
	console.log('ok: NotFoundError model_not_found, BadRequestError n');
}

(process.argv[3] === 'stream-error' ? streamError() : main()).catch((e) => {
	console.error('FAIL: unexpected', e);
	process.exit(1);
});
