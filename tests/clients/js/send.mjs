// Send one CloudEvent with the official JavaScript SDK (npm `cloudevents`), through its own
// HTTP transport (which sends chunked bodies, without Content-Length).
//
// usage: node send.mjs URL binary|structured ID TYPE SOURCE JSON_DATA [name=value ...]
// Prints "sent" and the response body once the server has answered.
import { CloudEvent, emitterFor, httpTransport, Mode } from "cloudevents";

const [url, mode, id, type, source, data, ...extensions] = process.argv.slice(2);
const attributes = { id, type, source, datacontenttype: "application/json", data: JSON.parse(data) };
for (const pair of extensions) {
  const i = pair.indexOf("=");
  attributes[pair.slice(0, i)] = pair.slice(i + 1);
}
const emit = emitterFor(httpTransport(url), { mode: mode === "binary" ? Mode.BINARY : Mode.STRUCTURED });
const response = await emit(new CloudEvent(attributes));
console.log("sent", JSON.stringify(response.body ?? ""));
