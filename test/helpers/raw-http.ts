import net from 'node:net';

export interface RawExchange {
  /** Everything the server wrote, as text. */
  response: string;
  /** The status of the first response, if one came. */
  status: number | undefined;
  /** The body of the first response (after the blank line), if one came. */
  body: string;
}

/** Opens a TCP connection to 127.0.0.1:`port` and resolves once it is connected. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Collects what the server writes until the socket closes (whoever closes it); errors count as a close. */
export function untilClosed(socket: net.Socket): Promise<RawExchange> {
  return new Promise((resolve) => {
    let response = '';
    socket.on('data', (chunk: Buffer) => (response += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.once('close', () => resolve(parse(response)));
  });
}

/** Reads from the socket until one whole response (with Content-Length) has arrived; the socket stays open. */
export function nextResponse(socket: net.Socket): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    let response = '';
    const onData = (chunk: Buffer) => {
      response += chunk.toString('latin1');
      const end = response.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(response.slice(0, end))?.[1] ?? 0);
      if (response.length - end - 4 < length) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(parse(response));
    };
    const onClose = () => reject(new Error(`the connection closed before a whole response: ${JSON.stringify(response)}`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** Sends `data` over a fresh connection and returns what came back once the connection closed. */
export async function exchange(port: number, ...data: (string | Buffer)[]): Promise<RawExchange> {
  const socket = await connect(port);
  const done = untilClosed(socket);
  for (const chunk of data) socket.write(chunk);
  return done;
}

function parse(response: string): RawExchange {
  const status = /^HTTP\/1\.1 (\d{3})/.exec(response)?.[1];
  const end = response.indexOf('\r\n\r\n');
  return { response, status: status === undefined ? undefined : Number(status), body: end < 0 ? '' : response.slice(end + 4) };
}
