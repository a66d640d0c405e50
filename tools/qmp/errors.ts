/**
 * What can go wrong talking QMP, one class per cause, modelled on python
 * qemu.qmp's hierarchy: every error is a HecaError (what / why / fix), and
 * callers that care can tell them apart with instanceof.
 */
import { HecaError } from '../core/errors.ts';

export class QmpError extends HecaError {
  constructor(what: string, opts: { why: string; fix?: string; details?: string; cause?: unknown }) {
    super(what, opts);
    this.name = new.target.name;
  }
}

/**
 * The socket could not be reached (missing path, refused, retry window over).
 * `code` is the errno name (ENOENT, ECONNREFUSED, EACCES, ...); `why` says it.
 */
export class QmpConnectError extends QmpError {
  readonly path: string;
  readonly code: string | undefined;

  constructor(path: string, code: string | undefined, why: string, cause?: unknown) {
    super(`cannot connect to the QMP socket ${path}`, {
      why,
      fix: 'check that QEMU is running and was started with -qmp unix:PATH,server=on,wait=off; its log says why it is not',
      cause,
    });
    this.path = path;
    this.code = code;
  }
}

/** The peer did not greet like QEMU, or refused qmp_capabilities. */
export class QmpNegotiationError extends QmpError {
  constructor(path: string, why: string, details?: string) {
    super(`QMP negotiation with ${path} failed`, {
      why,
      fix: 'make sure the path is a QEMU QMP socket (-qmp), not a serial or monitor chardev, and that no other client holds it',
      ...(details === undefined ? {} : { details }),
    });
  }
}

/** QEMU answered a command with an error. */
export class QmpCommandError extends QmpError {
  readonly command: string;
  /** QEMU's error class, e.g. GenericError, CommandNotFound, DeviceNotFound. */
  readonly errorClass: string;
  readonly desc: string;
  readonly args: Record<string, unknown> | undefined;

  constructor(command: string, errorClass: string, desc: string, args?: Record<string, unknown>) {
    super(`QMP command ${command} failed: ${errorClass}: ${desc}`, {
      why: `QEMU refused it${args && Object.keys(args).length ? ` with arguments ${JSON.stringify(args)}` : ''}`,
      fix: errorClass === 'CommandNotFound'
        ? 'this QEMU does not have the command: check its version (query-version) and that heca\'s patches are applied'
        : 'see QEMU\'s description above and qapi/*.json for what the command accepts',
    });
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
    this.args = args;
  }
}

/** No answer (or no awaited event) within the time allowed. */
export class QmpTimeoutError extends QmpError {
  /** The command, 'greeting', 'qmp_capabilities', or `event NAME`. */
  readonly command: string;
  readonly timeoutMs: number;

  constructor(command: string, timeoutMs: number, path: string) {
    const greeting = command === 'greeting';
    const event = command.startsWith('event ');
    super(greeting ? `no QMP greeting from ${path} within ${timeoutMs} ms`
      : event ? `no QMP ${command} from ${path} within ${timeoutMs} ms`
      : `no QMP reply to ${command} from ${path} within ${timeoutMs} ms`, {
      why: greeting
        ? 'the peer accepted the connection but said nothing: it is not a QMP socket, or QEMU is stopped, or another client is ' +
          'connected (QEMU serves one client per -qmp socket; further connections wait unanswered)'
        : event
          ? 'the event did not happen in time (or happened before the wait began)'
          : 'QEMU is stopped (SIGSTOP, a debugger), hung, or too overloaded to answer',
      fix: greeting
        ? 'close the other QMP client (or give QEMU another -qmp socket), and check that the path is a -qmp socket of a live QEMU'
        : 'check that the QEMU process is alive and not stopped (ps -o stat, its log); raise the timeout if the host is very slow',
    });
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

/** The connection closed while something was pending. */
export class QmpDisconnectedError extends QmpError {
  readonly command: string;

  constructor(command: string, path: string, reason: string) {
    super(`QMP connection ${path} closed while waiting for ${command}`, {
      why: reason,
      fix: 'QEMU probably exited (quit, a guest poweroff) or crashed: its log says why',
    });
    this.command = command;
  }
}
