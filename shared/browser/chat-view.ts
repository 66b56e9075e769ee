/**
 * The chat page's DOM, shared by every folder: a pane of messages, a line of
 * connection state, and the form that publishes.
 *
 * Message text is only ever set through textContent / append(string): a
 * message like `<img src=x onerror=alert(1)>` shows as those characters and
 * runs nothing. (Several of the documents' snippets use innerHTML here; that
 * is an XSS hole as soon as anybody else can publish.)
 *
 * Markup the tests rely on: each message is `.message[data-id]`, a gap or
 * error notice is `.notice`, and the state line carries `data-state`.
 */
import type { ClientObserver, ConnectionState } from './client.ts';
import type { ChatMessage } from './messages.ts';

export class ChatView {
  readonly #pane: HTMLElement;
  readonly #status: HTMLElement | null;

  /** `pane` receives the messages; `status`, when given, shows the connection state. */
  constructor(pane: HTMLElement, status: HTMLElement | null = null) {
    this.#pane = pane;
    this.#status = status;
  }

  /** Appends a message; `label` replaces the plain text (e.g. "ab said hi"). */
  showMessage(message: ChatMessage, label: string = message.text): void {
    const element = document.createElement('div');
    element.className = 'message';
    element.dataset.id = String(message.id);
    element.textContent = label;
    this.#append(element);
  }

  /** Appends a line that is not a message: a gap, an error. */
  showNotice(text: string): void {
    const element = document.createElement('div');
    element.className = 'notice';
    element.textContent = text;
    this.#append(element);
  }

  showState(state: ConnectionState, detail?: string): void {
    if (!this.#status) return;
    this.#status.dataset.state = state;
    this.#status.textContent = detail ? `${state}: ${detail}` : state;
  }

  /** An observer that shows everything a client reports in this view. */
  observer(label?: (message: ChatMessage) => string): ClientObserver {
    return {
      message: (message) => this.showMessage(message, label?.(message)),
      gap: (missed, after) =>
        this.showNotice(
          `${missed} message${missed === 1 ? '' : 's'} after #${after} could not be delivered ` +
            '(no longer held by the server).',
        ),
      state: (state, detail) => this.showState(state, detail),
    };
  }

  #append(element: HTMLElement): void {
    // Keep the newest line in view if the reader was already at the bottom.
    const atBottom = this.#pane.scrollTop + this.#pane.clientHeight >= this.#pane.scrollHeight - 4;
    this.#pane.append(element);
    if (atBottom) this.#pane.scrollTop = this.#pane.scrollHeight;
  }
}

/**
 * Sending messages, a simple POST (the documents' PublishForm). The body is
 * the raw text; the server answers 201 with the message, or 400/413 with a
 * line that says why, which is shown in `view` when one is given.
 */
export class PublishForm {
  constructor(form: HTMLFormElement, url: string, view?: ChatView) {
    const input = form.elements.namedItem('message') as HTMLInputElement;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const message = input.value;
      if (!message) return;
      input.value = '';
      void publish(url, message).then((problem) => {
        if (problem) view?.showNotice(`Not sent: ${problem}`);
      });
    });
  }
}

/** POSTs one message; resolves to a reason when it was not published. */
export async function publish(url: string, text: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, { method: 'POST', body: text });
    if (response.ok) return undefined;
    return (await response.text()).trim() || `${response.status} ${response.statusText}`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
